"""User-defined reward functions: only from allowed modules, only with the one signature."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from envsim.reward import custom
from envsim.reward.custom import (
    ENV_VAR,
    RewardModuleError,
    allow_reward_module,
    allowed_reward_modules,
    is_allowed,
    load_reward_function,
    revoke_reward_module,
)
from tests.reward import custom_rewards

MODULE = "tests.reward.custom_rewards"


@pytest.fixture(autouse=True)
def nothing_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no allowed module, and leaves none behind."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(custom, "_ALLOWED", set())
    yield


def test_nothing_is_allowed_by_default() -> None:
    assert allowed_reward_modules() == ()
    with pytest.raises(RewardModuleError, match=r"module 'tests.reward.custom_rewards' is not allowed"):
        load_reward_function(f"{MODULE}:polite")


def test_a_module_that_is_not_allowed_is_never_imported() -> None:
    name = "tests.reward.no_such_module_for_envsim"
    with pytest.raises(RewardModuleError, match="is not allowed"):
        load_reward_function(f"{name}:anything")
    assert name not in sys.modules


def test_allow_by_api_and_revoke() -> None:
    allow_reward_module("tests.reward")
    assert load_reward_function(f"{MODULE}:polite") is custom_rewards.polite
    revoke_reward_module("tests.reward")
    assert not is_allowed(MODULE)


def test_allow_by_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, " acme.rewards , tests.reward.custom_rewards ,")
    assert allowed_reward_modules() == ("acme.rewards", "tests.reward.custom_rewards")
    assert load_reward_function(f"{MODULE}:positional_only") is custom_rewards.positional_only


def test_a_prefix_covers_submodules_not_longer_names() -> None:
    allow_reward_module("tests")
    assert is_allowed("tests") and is_allowed("tests.reward.custom_rewards")
    assert not is_allowed("testsuite") and not is_allowed("test")


def test_bad_prefixes_are_refused() -> None:
    for bad in ("", "a..b", "a-b", "os:system"):
        with pytest.raises(ValueError, match="not a module name"):
            allow_reward_module(bad)


@pytest.mark.parametrize("reference", ["polite", "a.b", "a:b:c", "a.b:c.d", ":x", "1a:b", "a b:c"])
def test_references_must_be_module_colon_function(reference: str) -> None:
    allow_reward_module("a")
    with pytest.raises(RewardModuleError, match="must be a 'module:function' reference"):
        load_reward_function(reference)


@pytest.mark.parametrize("name", ["three", "keywords", "defaulted"])
def test_only_the_one_signature_is_accepted(name: str) -> None:
    allow_reward_module(MODULE)
    with pytest.raises(RewardModuleError, match=r"must take exactly \(trajectory, context\)"):
        load_reward_function(f"{MODULE}:{name}")


def test_missing_and_uncallable_functions_and_unimportable_modules() -> None:
    allow_reward_module("tests.reward")
    with pytest.raises(RewardModuleError, match=r"module 'tests\.reward\.custom_rewards' has no function 'nope'"):
        load_reward_function(f"{MODULE}:nope")
    with pytest.raises(RewardModuleError, match=r"tests\.reward\.custom_rewards:NOT_CALLABLE is not a function"):
        load_reward_function(f"{MODULE}:NOT_CALLABLE")
    with pytest.raises(RewardModuleError, match=r"cannot import reward module 'tests\.reward\.missing'"):
        load_reward_function("tests.reward.missing:f")
