"""Every exception envsim defines lives in :mod:`envsim.errors`, under ``EnvsimError``, and the tree drawn in its
docstring is the tree that exists (issue 21 item 5)."""

from __future__ import annotations

import ast
import builtins
import inspect
import re
from pathlib import Path

import envsim
import envsim.errors as errors

PACKAGE = Path(envsim.__file__).parent
BUILTIN_EXCEPTIONS = frozenset(
    name for name, obj in vars(builtins).items() if inspect.isclass(obj) and issubclass(obj, BaseException)
)
_NODE = re.compile(r"^(?P<prefix>(?:[│ ] {3})*(?:[├└]── )?)(?P<name>\w+)(?: \[(?P<also>[\w, ]+)\])?(?:\s|$)")


def _base_name(base: ast.expr) -> str:
    """``ValueError`` for ``ValueError``, ``errors.ScenarioError`` or ``Generic[...]``'s subscripted base."""
    if isinstance(base, ast.Subscript):
        return _base_name(base.value)
    if isinstance(base, ast.Attribute):
        return base.attr
    return base.id if isinstance(base, ast.Name) else ""


def _exception_classes_outside_errors(package: Path = PACKAGE) -> list[str]:
    """``path:line: Name`` of each class (at any depth) defined outside ``envsim/errors.py`` that is an exception:
    a base is a builtin exception or warning, an exception of :mod:`envsim.errors`, a class found so already,
    or a name read as one (``...Error``, ``...Exception``, ``...Warning``: another library's)."""
    known = set(BUILTIN_EXCEPTIONS) | {
        name for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, BaseException)
    }
    classes: list[tuple[str, ast.ClassDef]] = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "errors.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes += [(str(path.relative_to(package.parent)), n) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    found: dict[str, str] = {}
    grew = True
    while grew:  # a class deriving from one found is found too
        grew = False
        for where, node in classes:
            key = f"{where}:{node.lineno}: {node.name}"
            if key in found:
                continue
            names = [_base_name(b) for b in node.bases]
            if any(n in known or n in found.values() or n.endswith(("Error", "Exception", "Warning")) for n in names):
                found[key] = node.name
                grew = True
    return sorted(found)


def _drawn_trees() -> set[tuple[str, str | None, tuple[str, ...]]]:
    """The docstring's trees as ``(class, parent, other bases in brackets)``."""
    doc = errors.__doc__ or ""
    drawn: set[tuple[str, str | None, tuple[str, ...]]] = set()
    blocks = re.findall(r"::\n\n((?:    .*\n)+)", doc)
    assert len(blocks) == 2, "expected two drawings: the exceptions and the warnings"
    for block in blocks:
        stack: list[str] = []
        for line in block.splitlines():
            match = _NODE.match(line[4:])
            assert match, f"not a tree line: {line!r}"
            depth = len(match["prefix"]) // 4
            assert depth <= len(stack), f"a node without a parent: {line!r}"
            del stack[depth:]
            also = tuple(sorted(n.strip() for n in match["also"].split(","))) if match["also"] else ()
            drawn.add((match["name"], stack[-1] if stack else None, also))
            stack.append(match["name"])
    return drawn


def _actual_tree() -> set[tuple[str, str | None, tuple[str, ...]]]:
    """What :mod:`envsim.errors` defines, as the drawing writes it: each class with the envsim class it derives
    from (a root has none; a warning names the builtin warning), and its builtin bases besides."""
    actual: set[tuple[str, str | None, tuple[str, ...]]] = set()
    for cls in vars(errors).values():
        if not (inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == errors.__name__):
            continue
        ours = [b.__name__ for b in cls.__bases__ if b.__module__ == errors.__name__]
        others = [b.__name__ for b in cls.__bases__ if b.__module__ != errors.__name__]
        if ours:
            actual.add((cls.__name__, ours[0], tuple(sorted(others))))
        elif issubclass(cls, Warning):
            actual.add((cls.__name__, others[0], tuple(sorted(others[1:]))))
            actual.add((others[0], None, ()))
        else:
            actual.add((cls.__name__, None, ()))
    return actual


def test_every_exception_class_is_defined_in_envsim_errors() -> None:
    assert _exception_classes_outside_errors() == []


def test_the_walk_finds_exception_classes_outside_errors(tmp_path: Path) -> None:
    """A builtin's subclass, a subclass of that (nested in a function), one of envsim.errors', another library's."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "errors.py").write_text("class Fine(Exception): ...\n", encoding="utf-8")
    (package / "sub" / "a.py").write_text(
        "class Oops(RuntimeError): ...\n"
        "def f():\n    class Again(Oops): ...\n"
        "class Bad(errors.ScenarioError): ...\n"
        "class Theirs(httpx.HTTPError): ...\n"
        "class Plain(Base): ...\n",
        encoding="utf-8",
    )
    found = _exception_classes_outside_errors(package)
    assert [f.rsplit(" ", 1)[1] for f in found] == ["Oops", "Again", "Bad", "Theirs"]


def test_every_exception_is_an_envsim_error_or_a_warning() -> None:
    classes = [c for c in vars(errors).values() if inspect.isclass(c) and issubclass(c, BaseException)]
    strays = [c.__name__ for c in classes if not issubclass(c, errors.EnvsimError | Warning)]
    assert strays == []
    assert {c.__name__ for c in classes if issubclass(c, Warning)} == {"ScenarioWarning"}


def test_the_docstring_draws_exactly_the_tree_that_exists() -> None:
    assert _drawn_trees() == _actual_tree()


def test_builtin_bases_are_kept_so_builtin_handlers_still_catch() -> None:
    assert issubclass(errors.UnknownNameError, KeyError) and issubclass(errors.ToolkitLoadError, KeyError)
    assert issubclass(errors.OverrideError, ValueError)
    assert issubclass(errors.ScenarioWarning, UserWarning)


def test_moved_classes_stay_importable_from_their_old_modules() -> None:
    from envsim.factory.draw import NoMatch
    from envsim.factory.render import RenderError
    from envsim.registration import ScenarioWarning
    from envsim.reward.custom import RewardFunctionError, RewardModuleError
    from envsim.toolkits import OverrideError, ToolkitLoadError
    from envsim.transcripts.importers.common import TranscriptFormatError

    assert (NoMatch, RenderError, ScenarioWarning, OverrideError, ToolkitLoadError, TranscriptFormatError) == (
        errors.NoMatch,
        errors.RenderError,
        errors.ScenarioWarning,
        errors.OverrideError,
        errors.ToolkitLoadError,
        errors.TranscriptFormatError,
    )
    assert (RewardFunctionError, RewardModuleError) == (errors.RewardFunctionError, errors.RewardModuleError)
    assert envsim.ScenarioWarning is errors.ScenarioWarning
