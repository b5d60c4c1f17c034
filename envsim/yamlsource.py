"""YAML documents that remember where every value came from.

``load_yaml`` parses with PyYAML's safe loader (no Python tags), rejects duplicate keys,
and keeps, for every path into the data, the line and column of the key and of the value,
so that a validation error can point at ``file:line:col``.

Example:
    >>> doc = load_yaml_text("a:\\n  b: 1\\n")
    >>> doc.data
    {'a': {'b': 1}}
    >>> doc.locate(("a", "b"))
    (2, 6)
    >>> doc.locate(("a", "b"), key=True)
    (2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from envsim.errors import Problem, ScenarioError

Loc = tuple[str | int, ...]


class _SafeLoader(yaml.SafeLoader):
    """Safe loader that also refuses duplicate keys."""


def _no_duplicates(loader: _SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=deep))


_SafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


@dataclass
class YamlDocument:
    """Parsed data plus the position of every key and value (1-based line and column)."""

    data: Any
    path: Path | None
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def locate(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """Position of ``loc`` (or of its deepest existing prefix); of its key when ``key``."""
        loc = tuple(loc)
        while loc:
            table = self.keys if key else self.values
            if loc in table:
                return table[loc]
            if loc in self.values:
                return self.values[loc]
            loc = loc[:-1]
            key = True
        return self.values.get((), (1, 1))

    def problem(self, loc: Loc, message: str, *, key: bool = False, field: str | None = None) -> Problem:
        """A :class:`Problem` located at ``loc``."""
        line, col = self.locate(loc, key=key)
        name = field if field is not None else ".".join(str(p) for p in loc)
        return Problem(self.path, line, col, name, message)


def _index(node: yaml.Node, loc: Loc, doc: YamlDocument) -> None:
    doc.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*loc, key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value))
            doc.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _index(value_node, child, doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.keys[(*loc, i)] = (item.start_mark.line + 1, item.start_mark.column + 1)
            _index(item, (*loc, i), doc)


def _token_before(text: str, mark: yaml.Mark) -> yaml.Token | None:
    """The last token the scanner produced before ``mark`` (None when it cannot tell)."""
    previous = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if (token.start_mark.line, token.start_mark.column) >= (mark.line, mark.column):
                break
            previous = token
    except yaml.YAMLError:
        pass
    return previous


def _explain(err: yaml.MarkedYAMLError, text: str) -> tuple[int, int, str]:
    """``(line, column, message)`` of a YAML error, in plain words for the usual mistakes."""
    problem = str(err.problem or "")
    context = str(err.context or "")
    mark = err.problem_mark or err.context_mark
    if context == "while scanning a quoted scalar" and "end of stream" in problem and err.context_mark is not None:
        mark = err.context_mark
        message = "unclosed quote: the string that starts here is never closed"
    elif "character '\\t'" in problem:
        message = "a tab character cannot indent YAML; use spaces"
    elif problem.startswith("expected <block end>") and err.problem_mark is not None:
        before = _token_before(text, err.problem_mark)
        if (
            isinstance(before, yaml.ScalarToken)
            and before.style in ('"', "'")
            and before.end_mark.line > before.start_mark.line
        ):
            mark = before.start_mark
            message = f"unclosed quote: the string that starts here runs on to line {before.end_mark.line + 1}"
        elif "<block mapping start>" in problem or "<block sequence start>" in problem:
            block = "mapping" if "mapping" in problem else "list"
            message = f"bad indentation: this line does not line up with any {block} above it"
        else:
            message = " ".join(x for x in (context, problem) if x)
    else:
        message = " ".join(x for x in (context, problem) if x)
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return line, col, message


def _parse(text: str, path: Path | None) -> YamlDocument:
    try:
        data = yaml.load(text, Loader=_SafeLoader)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        line, col, message = _explain(err, text)
        raise ScenarioError([Problem(path, line, col, "", f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as err:
        raise ScenarioError([Problem(path, 1, 1, "", f"invalid YAML: {err}")]) from None
    doc = YamlDocument(data=data, path=path)
    if node is not None:
        _index(node, (), doc)
    return doc


def load_yaml_text(text: str, path: Path | None = None) -> YamlDocument:
    """Parse YAML text (``path`` only labels errors)."""
    return _parse(text, path)


def load_yaml(path: Path) -> YamlDocument:
    """Parse a YAML file; unreadable files raise :class:`ScenarioError` too."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ScenarioError([Problem(path, 1, 1, "", f"cannot read file: {err}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        line = raw.count(b"\n", 0, err.start) + 1
        col = len(raw[line_start : err.start].decode("utf-8", errors="replace")) + 1
        message = f"cannot read file: byte 0x{raw[err.start]:02x} is not valid UTF-8 (save the file as UTF-8)"
        raise ScenarioError([Problem(path, line, col, "", message)]) from None
    return _parse(text, path)
