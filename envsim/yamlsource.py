"""YAML documents that remember where every value came from, read safely from untrusted text.

``load_yaml`` parses with PyYAML's safe loader (no Python tags), rejects duplicate keys,
and keeps, for every path into the data, the line and column of the key and of the value,
so that a validation error can point at ``file:line:col``
(:func:`problems_from_validation` turns pydantic's errors into such located problems).

Every file envsim reads from users (scenarios, personas, judge rubrics) goes through this
module, which bounds what a hostile file can cost. Each limit is a located
:class:`~envsim.errors.ScenarioError`, raised before the data is built:

- aliases may add at most :data:`MAX_ALIAS_VALUES` values and :data:`MAX_ALIAS_CHARS`
  characters to what the text spells out (a "billion laughs" document is rejected at the alias
  that crosses the bound), and may not refer to the node that contains them;
- collections nest at most :data:`MAX_DEPTH` levels deep;
- an integer has at most :data:`MAX_INT_DIGITS` digits (Python's own limit, whatever the
  interpreter's setting);
- a value that cannot be built (``2024-13-45`` as a date, a list as a key) is an error at its
  position, never a ``ValueError`` or ``TypeError``.

Where PyYAML has libyaml, text is parsed and composed in C (a tenth of the time), then the node
graph is checked against the same bounds before anything is built; text on which libyaml and
PyYAML's own scanner may part (tabs, a byte order mark, ``\r``, ``?`` or nothing inside a flow
collection, ...), a bound crossed or any error sends the text to the Python loader above, whose
reading and located errors are the ones that count.

Merge keys (``<<: *base``) work as in ``yaml.safe_load``: the merged mapping's keys come first
and the keys written beside ``<<`` override them; a key written twice is still an error.

Example:
    >>> doc = load_yaml_text("a:\\n  b: 1\\n")
    >>> doc.data
    {'a': {'b': 1}}
    >>> doc.locate(("a", "b"))
    (2, 6)
    >>> doc.locate(("a", "b"), key=True)
    (2, 3)
    >>> load_yaml_text("base: &b {x: 1, y: 2}\\nd:\\n  <<: *b\\n  y: 3\\n").data["d"]
    {'x': 1, 'y': 3}
    >>> load_yaml_text("n: " + "9" * 5000)
    Traceback (most recent call last):
    ...
    envsim.errors.ScenarioError: <string>:1:4: invalid YAML: an integer of 5,000 digits is too long (at most 4,300)
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel, ValidationError

from envsim.errors import Problem, ScenarioError
from envsim.suggest import closest, did_you_mean

Loc = tuple[str | int, ...]


MAX_DEPTH = 100
"""Deepest nesting of lists and mappings (a scenario needs about 8)."""
MAX_ALIAS_VALUES = 100_000
"""Most values that aliases may add to those the text spells out."""
MAX_ALIAS_CHARS = 10_000_000
"""Most characters of text that aliases may add to those the text spells out."""
MAX_INT_DIGITS = 4300
"""Most digits of an integer (Python's default ``sys.get_int_max_str_digits()``)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


def _composer_error(problem: str, mark: Any) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, problem, mark)


class _Building(yaml.constructor.SafeConstructor):
    """How both loaders build values: ``safe_load``'s constructors, refusing what :func:`_mapping` and
    :func:`_integer` refuse, and reporting a value Python cannot build at its position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Build one value; one that Python refuses (a 13th month, a list as a key) is a located YAML error."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as err:
            kind = str(node.tag).rsplit(":", 1)[-1]
            shown = node.value if isinstance(node.value, str) else "this value"
            problem = f"cannot read {_short(shown)!r} as {kind}: {err}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


class _SafeLoader(_Building, yaml.SafeLoader):
    """Safe loader that refuses duplicate keys and bounds nesting, alias expansion and integer size.

    While composing it keeps, for every finished node, the values and characters it stands for
    once every alias inside it is expanded; an alias adds its node's figures to the document's
    running total, so the bound is checked at the alias that crosses it, before anything is built.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[yaml.Node, tuple[int, int]] = {}
        self._alias_values = 0
        self._alias_chars = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        """Refuse a ``[`` or ``{`` past :data:`MAX_DEPTH` while scanning (the scanner looks ahead of the composer)."""
        if self.flow_level >= MAX_DEPTH:
            problem = f"lists and mappings nest more than {MAX_DEPTH} levels deep"
            raise yaml.scanner.ScannerError(None, None, problem, self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node, refusing recursive aliases, too much expansion and too deep nesting."""
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node = cast(yaml.Node, super().compose_node(parent, index))  # an undefined alias raises here
            size = self._sizes.get(node)
            if size is None:
                problem = f"alias *{event.anchor} refers to the node that contains it (a recursive structure)"
                raise _composer_error(problem, event.start_mark)
            self._alias_values += size[0]
            self._alias_chars += size[1]
            if self._alias_values > MAX_ALIAS_VALUES:
                problem = f"aliases expand to more than {MAX_ALIAS_VALUES:,} values beyond those written out"
                raise _composer_error(f'{problem} (a "billion laughs" document?)', event.start_mark)
            if self._alias_chars > MAX_ALIAS_CHARS:
                problem = f"aliases expand to more than {MAX_ALIAS_CHARS:,} characters beyond those written out"
                raise _composer_error(problem, event.start_mark)
            return node
        if self._depth >= MAX_DEPTH:
            problem = f"lists and mappings nest more than {MAX_DEPTH} levels deep"
            raise _composer_error(problem, event.start_mark)
        self._depth += 1
        try:
            node = cast(yaml.Node, super().compose_node(parent, index))
        finally:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            self._sizes[node] = (1, len(node.value))
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            self._sizes[node] = (
                1 + sum(self._sizes[c][0] for c in children),
                sum(self._sizes[c][1] for c in children),
            )
        return node


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mapping(loader: _SafeLoader | yaml.CSafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """A mapping as ``safe_load`` builds it (merge keys included), refusing a key written twice."""
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        if key_node.tag == _VALUE_TAG:  # the YAML 1.1 "=" key is a string, as flatten_mapping makes it
            key_node.tag = _STR_TAG
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            problem = "a key must be a single value, not a list or mapping"
            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
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


def _integer(loader: _SafeLoader | yaml.CSafeLoader, node: yaml.ScalarNode) -> int:
    """An integer as ``safe_load`` reads it, refused past :data:`MAX_INT_DIGITS` digits."""
    digits = str(node.value).replace("_", "").replace(":", "").lstrip("+-")
    if digits[:2] in ("0x", "0b"):
        digits = digits[2:]
    if len(digits) > MAX_INT_DIGITS:
        problem = f"an integer of {len(digits):,} digits is too long (at most {MAX_INT_DIGITS:,})"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
    value: int = loader.construct_yaml_int(node)
    return value


_SafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_SafeLoader.add_constructor("tag:yaml.org,2002:int", _integer)

_FastLoader: type[yaml.CSafeLoader] | None = None
"""libyaml's parser and composer (in C) with :class:`_SafeLoader`'s constructors, when PyYAML has libyaml."""
if yaml.__with_libyaml__:  # pragma: no branch

    class _CFastLoader(_Building, yaml.CSafeLoader):
        """The C parser and composer, building values as :class:`_SafeLoader` does."""

    _CFastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    _CFastLoader.add_constructor("tag:yaml.org,2002:int", _integer)
    _FastLoader = _CFastLoader

C_NESTING = 5_000
"""Deepest nesting the C composer (which recurses in C, unbounded) is given: text that might nest
deeper goes to :class:`_SafeLoader`, which refuses it past :data:`MAX_DEPTH`."""


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
        for token in yaml.scan(text, Loader=_SafeLoader):
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
    if context.startswith("found duplicate anchor") and err.context_mark is not None:
        anchor = context.removeprefix("found duplicate anchor ").removesuffix("; first occurrence")
        message = f"duplicate anchor {anchor} (first at line {err.context_mark.line + 1})"
    elif context == "while scanning a quoted scalar" and "end of stream" in problem and err.context_mark is not None:
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


def _reader_problem(err: yaml.reader.ReaderError, text: str) -> tuple[int, int, str]:
    """``(line, column, message)`` of a character that YAML does not allow."""
    if not isinstance(err.character, int) or not 0 <= err.position <= len(text):
        return 1, 1, str(err)
    line = text.count("\n", 0, err.position) + 1
    col = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
    why = "control characters and lone surrogates cannot appear in YAML"
    return line, col, f"the character U+{err.character:04X} is not allowed ({why})"


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree of ``text`` (composed once, within the bounds) and the data built from it."""
    loader = _SafeLoader(text)  # the reader checks every character here
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


_PARTING = ("\t", "\ufeff", "\r", "\x85", "\u2028", "\u2029")
"""Characters on which libyaml's scanner and PyYAML's do not always agree (tabs, a byte order mark, the
line breaks other than ``\\n``): text holding any is read by :class:`_SafeLoader` alone."""


_BLOCK_HEADER_COMMENT = re.compile(r"[|>][-+0-9]*#")
"""A block scalar's header run into a comment (``>-#``): PyYAML refuses it, libyaml reads it."""


def _nesting_bound(text: str) -> int:
    """At least the deepest nesting of nodes in ``text``: each flow collection takes a bracket and every
    two levels of block collections at least one more column (a sequence may share its key's)."""
    longest = max(map(len, text.splitlines()), default=0)
    return 2 * (longest + 2) + text.count("[") + text.count("{")


def _scanners_part(node: yaml.ScalarNode, in_flow: bool, block_value: bool) -> bool:
    """Whether libyaml and PyYAML may have read ``node`` apart: a plain scalar (libyaml's style is "",
    PyYAML's None) with a ``?`` inside a flow collection, or empty anywhere but as a block mapping's
    value (``[1, , 2]``, a bare ``!``, a lone ``?`` or ``---``: the two place or type it differently)."""
    if node.style:
        return False
    if not node.value:
        return in_flow or not block_value or node.tag != _NULL_TAG
    return in_flow and "?" in node.value


def _within_bounds(root: yaml.Node) -> bool:
    """Whether the node graph the C composer made is one :class:`_SafeLoader` reads alike and accepts: no
    scalar the two scanners read apart, no alias inside the node it names, nesting below :data:`MAX_DEPTH`,
    aliases adding at most :data:`MAX_ALIAS_VALUES` values and :data:`MAX_ALIAS_CHARS` characters (what
    the expanded tree holds beyond each node written once)."""
    expanded: dict[int, tuple[int, int]] = {}
    written_values = written_chars = 0
    # (node, depth, its children are done, inside a flow collection, a block mapping's value)
    stack: list[tuple[yaml.Node, int, bool, bool, bool]] = [(root, 0, False, False, False)]
    open_nodes: set[int] = set()
    while stack:
        node, depth, done, in_flow, block_value = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            sizes = [expanded[id(c)] for c in children]
            expanded[key] = (1 + sum(v for v, _ in sizes), sum(c for _, c in sizes))
            continue
        if key in open_nodes:
            return False  # a recursive structure
        if key in expanded:
            continue  # an alias of a node already built
        if depth >= MAX_DEPTH - 2:
            return False
        if isinstance(node, yaml.ScalarNode):
            if _scanners_part(node, in_flow, block_value):
                return False
            expanded[key] = (1, len(node.value))
            written_values, written_chars = written_values + 1, written_chars + len(node.value)
            continue
        assert isinstance(node, yaml.CollectionNode)
        written_values += 1
        open_nodes.add(key)
        stack.append((node, depth, True, in_flow, block_value))
        flow = in_flow or bool(node.flow_style)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1, False, flow, False) for child in reversed(node.value))
        else:
            for k, v in reversed(node.value):
                stack.extend(((v, depth + 1, False, flow, not flow), (k, depth + 1, False, flow, False)))
    values, chars = expanded[id(root)]
    return values - written_values <= MAX_ALIAS_VALUES and chars - written_chars <= MAX_ALIAS_CHARS


def _compose_fast(text: str) -> tuple[yaml.Node | None, Any] | None:
    """:func:`_compose_and_construct` through libyaml, or None when it is not there, the text might nest
    too deep for it, or anything is wrong (:class:`_SafeLoader` then reads the text again, to say what)."""
    if _FastLoader is None or _nesting_bound(text) > C_NESTING or any(c in text for c in _PARTING):
        return None
    if _BLOCK_HEADER_COMMENT.search(text):
        return None
    try:
        loader = _FastLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and not _within_bounds(node):
                return None
            return node, (loader.construct_document(node) if node is not None else None)
        finally:
            loader.dispose()
    except Exception:  # every error is reported, located and worded, by the Python loader
        return None


def _parse(text: str, path: Path | None) -> YamlDocument:
    """Compose ``text`` once (bounded), build the data from that node tree, and index its positions."""
    fast = _compose_fast(text)
    try:
        node, data = fast if fast is not None else _compose_and_construct(text)
    except yaml.MarkedYAMLError as err:
        line, col, message = _explain(err, text)
        raise ScenarioError([Problem(path, line, col, "", f"invalid YAML: {message}")]) from None
    except yaml.reader.ReaderError as err:
        line, col, message = _reader_problem(err, text)
        raise ScenarioError([Problem(path, line, col, "", f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as err:
        raise ScenarioError([Problem(path, 1, 1, "", f"invalid YAML: {err}")]) from None
    doc = YamlDocument(data=data, path=path)
    if node is not None:  # merge keys are flattened in place by now, so merged values index where they are written
        _index(node, (), doc)
    return doc


def load_yaml_text(text: str, path: Path | None = None) -> YamlDocument:
    """Parse YAML text (``path`` only labels errors)."""
    return _parse(text, path)


def read_text(path: Path) -> str:
    """A file's text; an unreadable file, or one that is not UTF-8, raises a located :class:`ScenarioError`."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ScenarioError([Problem(path, 1, 1, "", f"cannot read file: {err}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        line = raw.count(b"\n", 0, err.start) + 1
        col = len(raw[line_start : err.start].decode("utf-8", errors="replace")) + 1
        message = f"cannot read file: byte 0x{raw[err.start]:02x} is not valid UTF-8 (save the file as UTF-8)"
        raise ScenarioError([Problem(path, line, col, "", message)]) from None


def load_yaml(path: Path) -> YamlDocument:
    """Parse a YAML file; unreadable files raise :class:`ScenarioError` too."""
    return _parse(read_text(path), path)


def _unwrap(annotation: Any) -> list[Any]:
    """The member types of an annotation (Optional/Union unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _step(annotation: Any, part: str | int) -> Any:
    """The annotation one step down ``part`` (a field name, list index or dict key)."""
    for member in _unwrap(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            field = member.model_fields.get(part)
            if field is not None:
                return field.annotation
        origin = typing.get_origin(member)
        if origin in (list, tuple) and isinstance(part, int):
            return typing.get_args(member)[0]
        if origin is dict:
            return typing.get_args(member)[1]
    return None


def allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names allowed at the mapping ``loc`` points into (for suggestions)."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    for member in _unwrap(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return list(member.model_fields)
        if typing.get_origin(member) is dict:
            key_type = typing.get_args(member)[0]
            if typing.get_origin(key_type) is typing.Literal:
                return [str(a) for a in typing.get_args(key_type)]
    return []


def _literal_values(model: type[BaseModel], loc: Loc) -> list[str]:
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    values: list[str] = []
    for member in _unwrap(annotation):
        if typing.get_origin(member) is typing.Literal:
            values.extend(str(a) for a in typing.get_args(member))
    return values


_PATTERN_WORDS = {
    r"^[A-Z][A-Za-z0-9]*$": "must be CamelCase (a capital letter, then letters and digits only)",
    r"^[a-z][a-z0-9_]*$": "must be snake_case (a lower-case letter, then lower-case letters, digits and _)",
}
"""Plain words for the schema's string patterns (a regex is no message for a scenario author)."""


def _misspelt(errors: list[Any], model: type[BaseModel]) -> set[Loc]:
    """Locations of missing fields that an unknown key beside them is a misspelling of."""
    meant: set[Loc] = set()
    for e in errors:
        if e["type"] == "extra_forbidden":
            loc = tuple(e["loc"])
            match = closest(str(loc[-1]), allowed_keys(model, loc[:-1]))
            if match is not None:
                meant.add((*loc[:-1], match))
    return meant


def problems_from_validation(doc: YamlDocument, err: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """Turn pydantic's errors on the data of ``doc`` into located problems with suggestions.

    Every file validated against a model (scenarios, judge rubrics, reward defaults, families,
    mining mappings) reports through this. A required field reported missing because its key is
    misspelt is reported once, as the unknown key with its "did you mean".

    Example:
        >>> from pydantic import ConfigDict
        >>> class Point(BaseModel):
        ...     model_config = ConfigDict(extra="forbid")
        ...     x: int
        >>> doc = load_yaml_text("xx: 1")
        >>> try:
        ...     Point.model_validate(doc.data)
        ... except ValidationError as err:
        ...     print(*problems_from_validation(doc, err, Point))
        <string>:1:1: xx: unknown field (did you mean 'x'?)
    """
    problems: list[Problem] = []
    errors = err.errors(include_url=False)
    misspelt = _misspelt(errors, model)
    for e in errors:
        loc: Loc = tuple(e["loc"])
        kind = e["type"]
        if loc and loc[-1] == "[key]":  # an invalid key of a dict
            loc = loc[:-1]
            bad = str(loc[-1])
            problems.append(
                doc.problem(loc, f"unknown key {bad!r}{did_you_mean(bad, allowed_keys(model, loc[:-1]))}", key=True)
            )
            continue
        if kind == "extra_forbidden":
            name = str(loc[-1])
            choices = allowed_keys(model, loc[:-1])
            problems.append(doc.problem(loc, f"unknown field{did_you_mean(name, choices)}", key=True))
        elif kind == "missing":
            if loc not in misspelt:
                problems.append(doc.problem(loc, "required field is missing", key=True))
        elif kind == "string_pattern_mismatch":
            pattern = str(e.get("ctx", {}).get("pattern", ""))
            words = _PATTERN_WORDS.get(pattern, f"must match the pattern {pattern!r}")
            problems.append(doc.problem(loc, f"{words}, got {e.get('input')!r}"))
        elif kind == "literal_error":
            given = str(e.get("input"))
            message = e["msg"]
            suggestion = did_you_mean(given, _literal_values(model, loc))
            problems.append(doc.problem(loc, f"{message}, got {given!r}{suggestion}"))
        else:
            message = e["msg"].removeprefix("Value error, ")
            problems.append(doc.problem(loc, message))
    return problems
