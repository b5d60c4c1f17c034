"""Optional paraphrase of generated scenarios (``envsim scenarios generate --paraphrase MODEL``).

A model rewords a scenario's ``user.opening`` and ``user.goal`` (one call each, through
:func:`envsim.llm.complete`, so a call cache or a test provider sees it). A paraphrase is kept
only if it keeps every fact value: each value of the scenario's facts that the original text
holds, and each number, id, amount, email or date in it, must appear in the paraphrase exactly as
written, and the paraphrase may hold no such value the original does not (a changed value shows
as one dropped and one new). Otherwise it is **rejected** and counted, and the scenario keeps its
original text; a call that fails is counted as **failed** the same way. A kept paraphrase is
recorded in the scenario's ``source.paraphrase`` (the model).

Answers are cached on disk by model, prompt version, field and text (``$ENVSIM_PARAPHRASE_CACHE``;
``off`` for none; default ``$XDG_CACHE_HOME/envsim/paraphrase``), so a rerun with the same seed
writes the same files without calling the model again.

Example:
    >>> check_values("Refund order #W0044 ($12.99).", "Please refund #W0044, $12.99.", ["#W0044"])
    >>> check_values("Refund order #W0044 ($12.99).", "Please refund #W0045, $12.99.", ["#W0044"])
    "dropped '#W0044'; added '#W0045'"
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envsim.errors import EnvsimError
from envsim.fileio import write_atomic
from envsim.scenario import Scenario

PROMPT_VERSION = 1
"""Part of every cache key: a changed prompt never reuses old answers."""

CACHE_ENV = "ENVSIM_PARAPHRASE_CACHE"
MAX_GROWTH = 3.0
"""A paraphrase longer than this many times the original (plus 80 characters) is rejected."""

FIELDS: tuple[Literal["opening", "goal"], ...] = ("opening", "goal")

INSTRUCTIONS = {
    "opening": "Rewrite this first message of a customer to a support agent in different words, as another "
    "customer might write it, keeping its meaning and tone.",
    "goal": "Rewrite this description of what a customer wants in different words, keeping its meaning.",
}
RULES = (
    "Keep every name, number, id, amount, email address and date exactly as written. Do not add any detail. "
    "Reply with the rewritten text only."
)

_VALUE = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an email address
    r"|\$\d[\d,]*(?:\.\d+)?"  # an amount
    r"|#?\b[A-Za-z]*\d[\w-]*"  # a number or an id (#W0044, C0265, 555-0142, 2024-05-01)
)


def text_values(text: str) -> Counter[str]:
    """The numbers, ids, amounts and email addresses in ``text`` (trailing punctuation left out).

    Example:
        >>> sorted(text_values("Order #W0044 for $12.99, call 555-0142 or a.b@x.io."))
        ['#W0044', '$12.99', '555-0142', 'a.b@x.io']
    """
    return Counter(match.rstrip(".,-") for match in _VALUE.findall(text))


def check_values(original: str, paraphrase: str, facts: Iterable[str]) -> str | None:
    """Why ``paraphrase`` does not keep the values of ``original`` (``None`` when it does): the fact values
    the original holds, and its numbers, ids, amounts and emails, each exactly; no new one."""
    dropped = [value for value in dict.fromkeys(facts) if value and value in original and value not in paraphrase]
    before, after = text_values(original), text_values(paraphrase)
    dropped += [value for value in before if after[value] < 1 and value not in dropped]
    added = [value for value in after if before[value] < 1]
    parts = []
    if dropped:
        parts.append("dropped " + ", ".join(map(repr, dropped)))
    if added:
        parts.append("added " + ", ".join(map(repr, added)))
    return "; ".join(parts) or None


def default_cache_dir() -> Path | None:
    """``$ENVSIM_PARAPHRASE_CACHE`` (``off``: none), else ``$XDG_CACHE_HOME/envsim/paraphrase`` (or ``~/.cache``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None and configured.strip():
        return None if configured.strip().lower() == "off" else Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "envsim" / "paraphrase"


@dataclass
class Paraphraser:
    """Rewords scenarios' openings and goals with ``model``; counts kept, rejected and failed paraphrases.

    ``options`` go to every call (e.g. ``mock_response`` in tests, ``temperature``); those that change the
    answer are part of the cache key.
    """

    model: str
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    options: dict[str, Any] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def __call__(self, scenario: Scenario) -> Scenario:
        """``scenario`` with its opening and goal reworded where the paraphrase keeps every value."""
        facts = [fact.value for fact in scenario.user.facts]
        update: dict[str, str] = {}
        for name in FIELDS:
            original = getattr(scenario.user, name)
            try:
                text = self.paraphrase(name, original)
            except EnvsimError as error:
                self._count("failed", f"{scenario.id}.user.{name}: {error}")
                continue
            problem = check_values(original, text, facts)
            if problem is None and not text.strip():
                problem = "empty"
            if problem is None and len(text) > MAX_GROWTH * len(original) + 80:
                problem = f"{len(text)} characters for {len(original)}"
            if problem is not None:
                self._count("rejected", f"{scenario.id}.user.{name}: {problem}")
                continue
            self.counts["accepted"] += 1
            update[name] = text.strip()
        if not update:
            return scenario
        user = scenario.user.model_copy(update=update)
        source = scenario.source.model_copy(update={"paraphrase": self.model}) if scenario.source is not None else None
        return scenario.model_copy(update={"user": user, "source": source})

    def paraphrase(self, name: Literal["opening", "goal"], text: str) -> str:
        """The model's rewording of one field's ``text`` (from the cache when it has it)."""
        from envsim.llm import ModelCallError, complete

        messages = [
            {"role": "system", "content": f"{INSTRUCTIONS[name]} {RULES}"},
            {"role": "user", "content": text},
        ]
        key = self._key(messages)
        cached = self._cached(key)
        if cached is not None:
            self.counts["cached"] += 1
            return cached
        try:
            answer = complete(self.model, messages, **self.options).text
        except ModelCallError:
            raise
        except Exception as error:  # litellm's own errors: a failed paraphrase, never a crash of the run
            raise ModelCallError(self.model, error) from None
        self._store(key, text, answer)
        return answer

    def summary(self) -> dict[str, Any]:
        """Counts and the first example of each problem, for ``suite.json`` and ``--json``."""
        return {
            "model": self.model,
            **{kind: self.counts.get(kind, 0) for kind in ("accepted", "rejected", "failed", "cached")},
            "examples": dict(sorted(self.examples.items())),
        }

    def _count(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, example)

    def _key(self, messages: list[dict[str, str]]) -> str:
        shaping = {k: v for k, v in sorted(self.options.items()) if k not in ("api_key", "api_base", "timeout")}
        blob = json.dumps([PROMPT_VERSION, self.model, messages, shaping], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _cached(self, key: str) -> str | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / key[:2] / f"{key}.json"
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        answer = entry.get("paraphrase") if isinstance(entry, dict) else None
        return answer if isinstance(answer, str) else None

    def _store(self, key: str, text: str, answer: str) -> None:
        if self.cache_dir is None:
            return
        folder = self.cache_dir / key[:2]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            entry = {"model": self.model, "prompt_version": PROMPT_VERSION, "text": text, "paraphrase": answer}
            write_atomic(folder / f"{key}.json", json.dumps(entry, ensure_ascii=False) + "\n", durable=False)
        except OSError:
            pass  # a cache that cannot be written only costs a call next time
