"""Delexicalised values: the tiny policy reads and writes placeholders instead of emails, ids and phone numbers.

A model trained from scratch on a few hundred conversations learns each task's plan but not to copy a
value it has never seen (an email, an order id) from the conversation into a tool call: it recalls
the values of its training instances (``bench/README.md``, "Flywheel on a suite"). Task-oriented dialogue
systems have long solved this by *delexicalisation*: the policy sees each value as a placeholder, and
its output's placeholders are mapped back to the values before the action is taken. Copying a value
is then writing one token that the conversation already holds.

:class:`ValueCodec` is that mapping, the policy's input and output representation only (the
environment, its rewards and the datasets keep the literal values):

- **What a value is.** In a message's text, a run of characters other than whitespace, quotes,
  brackets, ``, ; ! ? \\`` and ``<>`` (with a trailing ``.`` or ``:`` left out) that contains a digit
  or ``@``: ``amelia.garcia59@post.example``, ``#W0630``, ``C0059``, ``312-171-7644``, ``2024-06-26``,
  ``$219.95``, ``5-7``. Words, JSON keys and JSON numbers (``"quantity": 3``) stay as they are. A
  message content or tool-call ``arguments`` that is JSON is decoded first and its string leaves
  delexicalised (then written back compactly), so a value reads the same in the caller's sentence
  and in a tool result, escapes (``\\u00e9``, ``\\/``, ``\\n``) included.
- **Amounts in cents.** envsim's worlds store money in cents (``"total_cents": 6997``) and agents say
  dollars (``$69.97``, :func:`envsim.prompts.dollars`). In what the agent reads (not in its own calls), an
  integer member whose key ends in ``_cents`` is shown as the money placeholder of its dollar amount,
  the one the caller's ``$69.97`` gets too, so the amount the agent must state is a value to copy, not
  arithmetic to do.
- **Placeholders are typed by the value's shape** (:data:`KINDS`): ``<email1>``, ``<date1>``,
  ``<money1>``, ``<phone1>``, ``<id1>`` (letters and digits: ``#W0630``, ``C0059``), ``<num1>``, each
  kind numbered by first appearance in the episode (the system prompt, then the messages in order:
  the caller's words, tool results and the agent's own earlier calls alike), so the same value is
  the same placeholder on every turn. The agent's own turns only reuse placeholders: a value that
  first appears there (one it composed, such as a date it reformatted) stays literal, as the model
  must write it out. The shape is the one thing the literal value told the model
  about which value is which (the email is the one with ``@``); an untyped ``<v3>`` would hide it.
  A value past its kind's slots stays literal.
- **Decoding** (:meth:`ValueCodec.lexicalise`) replaces each known placeholder in the model's text by
  its value before the text is parsed into an action; an unknown one is left as written, so the
  environment sees (and reports) a call with an argument ``<id9>``. Values contain no quote,
  backslash or whitespace, so a value put inside a JSON string needs no escaping.

The placeholders are tokens of their own in the tokenizer (:meth:`ValueCodec.tokens`); one codec
object serves the tokenizer's corpus, the SFT rows, the GRPO rollouts and the evaluations
(:mod:`envsim.train.flywheel`).

Example:
    >>> codec = ValueCodec()
    >>> view = codec.delexicalise([{"role": "user", "content": "Email ana.li7@x.io, order #W0301."},
    ...                            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function",
    ...                             "function": {"name": "get_order", "arguments": '{"order_id": "#W0301"}'}}]}])
    >>> view.messages[0]["content"], view.messages[1]["tool_calls"][0]["function"]["arguments"]
    ('Email <email1>, order <id1>.', '{"order_id": "<id1>"}')
    >>> codec.lexicalise('{"name": "get_order", "arguments": {"order_id": "<id1>", "x": "<id7>"}}', view.table)
    '{"name": "get_order", "arguments": {"order_id": "#W0301", "x": "<id7>"}}'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ValuesMode = Literal["literal", "placeholders"]
"""How the policy sees values: as they are, or as placeholders (:class:`ValueCodec`)."""

KINDS: dict[str, int] = {"email": 4, "date": 8, "money": 16, "phone": 4, "id": 24, "num": 8}
"""Placeholder kinds and each one's slots (64 tokens in all), in the order :func:`kind_of` tests them."""

_KIND_NAMES = "|".join(KINDS)
_CANDIDATE = re.compile(rf"<({_KIND_NAMES})(\d+)>|[^\s\"'`()\[\]{{}}<>,;!?\\]+")
_PLACEHOLDER = re.compile(rf"<({_KIND_NAMES})(\d+)>")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PHONE = re.compile(r"\+?[\d\-.()]+")


def kind_of(value: str) -> str:
    """The placeholder kind of a value (see :data:`KINDS`).

    Example:
        >>> [kind_of(v) for v in ["a7@x.io", "2024-06-26", "$219.95", "312-171-7644", "#W0630", "5-7"]]
        ['email', 'date', 'money', 'phone', 'id', 'num']
    """
    if "@" in value:
        return "email"
    if _DATE.fullmatch(value):
        return "date"
    if value[0] in "$€£":
        return "money"
    if _PHONE.fullmatch(value) and sum(c.isdigit() for c in value) >= 7:
        return "phone"
    if any(c.isalpha() for c in value):
        return "id"
    return "num"


def is_value(token: str) -> bool:
    """Whether a token (already cut at the delimiters) is a value: it holds a digit or ``@``."""
    return "@" in token or any(c.isdigit() for c in token)


@dataclass
class Delexicalised:
    """A conversation as the policy sees it, and the placeholder → value table it was written with."""

    messages: list[dict[str, Any]]
    table: dict[str, str] = field(default_factory=dict)


@dataclass
class _Episode:
    """One episode's assignment of placeholders (value → placeholder, per-kind counters)."""

    reserved: set[str]
    by_value: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    new: bool = True

    def placeholder(self, value: str) -> str | None:
        known = self.by_value.get(value)
        if known is not None or not self.new:
            return known
        kind = kind_of(value)
        n = self.counts.get(kind, 0)
        while True:
            n += 1
            if n > KINDS[kind]:
                return None  # out of slots: the value stays literal
            name = f"<{kind}{n}>"
            if name not in self.reserved:  # the conversation already holds it literally (an unknown one a model wrote)
                break
        self.counts[kind] = n
        self.by_value[value] = name
        return name

    def text(self, text: str) -> str:
        out: list[str] = []
        last = 0
        for match in _CANDIDATE.finditer(text):
            if match.group(1) is not None:
                continue  # a placeholder already: left as it is
            token = match.group(0)
            core = token.rstrip(".:")
            if not core or not is_value(core):
                continue
            name = self.placeholder(core)
            if name is None:
                continue
            out.append(text[last : match.start()])
            out.append(name)
            last = match.start() + len(core)
        out.append(text[last:])
        return "".join(out)

    def tree(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, list):
            return [self.tree(v) for v in data]
        if isinstance(data, dict):
            return {k: self._cents(v) if _is_cents(k, v) and self.new else self.tree(v) for k, v in data.items()}
        return data  # numbers, booleans, null: as they are

    def _cents(self, cents: int) -> Any:
        """An amount in cents read from the world, as the placeholder of the dollars the agent says (``$69.97``)."""
        from envsim.prompts import dollars

        name = self.placeholder(dollars(cents))
        return cents if name is None else name

    def content(self, text: str) -> str:
        """A message content or a tool call's arguments: a JSON object or array decoded first."""
        stripped = text.strip()
        if stripped[:1] in ("{", "["):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, (dict, list)):
                return json.dumps(self.tree(data), ensure_ascii=False, separators=(",", ":"))
        return self.text(text)

    def message(self, message: Mapping[str, Any]) -> dict[str, Any]:
        # The agent can only point at values it has read: one it composed (a date of birth in ISO form from the
        # caller's "14 March 1985") it writes out, so its own turns take no new placeholder.
        self.new = message.get("role") != "assistant"
        item = dict(message)
        if isinstance(item.get("content"), str):
            item["content"] = self.content(item["content"])
        if item.get("tool_calls"):
            calls = []
            for call in item["tool_calls"]:
                call = dict(call)
                fn = dict(call.get("function", {}))
                arguments = fn.get("arguments")
                if isinstance(arguments, str):
                    fn["arguments"] = self._arguments(arguments)
                elif isinstance(arguments, dict):
                    fn["arguments"] = self.tree(arguments)
                call["function"] = fn
                calls.append(call)
            item["tool_calls"] = calls
        return item

    def _arguments(self, text: str) -> str:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return self.text(text)
        return json.dumps(self.tree(data), ensure_ascii=False)  # as envsim.agents.hf writes parsed arguments


class ValueCodec:
    """Values ↔ typed placeholders for one policy (see the module docstring); stateless, one per run."""

    mode: ValuesMode = "placeholders"

    def tokens(self) -> list[str]:
        """Every placeholder token, to add to the tokenizer (``<email1>`` ... ``<num16>``)."""
        return [f"<{kind}{n}>" for kind, slots in KINDS.items() for n in range(1, slots + 1)]

    def delexicalise(self, messages: Sequence[Mapping[str, Any]]) -> Delexicalised:
        """The conversation with its values replaced, numbered by first appearance, and the table to decode with.

        A pure function of ``messages``: a conversation that grows by appended messages keeps its
        earlier placeholders, so a rollout may re-delexicalise the whole conversation every turn.
        """
        reserved: set[str] = set()
        for message in messages:
            for text in _strings(message):
                reserved.update(m.group(0) for m in _PLACEHOLDER.finditer(text))
        episode = _Episode(reserved)
        out = [episode.message(m) for m in messages]
        return Delexicalised(out, {name: value for value, name in episode.by_value.items()})

    def lexicalise(self, text: str, table: Mapping[str, str]) -> str:
        """The model's text with each placeholder of ``table`` replaced by its value (unknown ones kept)."""
        return _PLACEHOLDER.sub(lambda m: table.get(m.group(0), m.group(0)), text)

    def describe(self) -> dict[str, Any]:
        """What the report records: the mode and each kind's slots."""
        return {"values": self.mode, "placeholder_slots": dict(KINDS)}


def _is_cents(key: str, value: Any) -> bool:
    """Whether a JSON member is an amount in cents (envsim's money convention: ``total_cents``, ``amount_cents``)."""
    return key.endswith("_cents") and isinstance(value, int) and not isinstance(value, bool)


def _strings(message: Mapping[str, Any]) -> list[str]:
    """The message's text and its tool calls' arguments (as text)."""
    texts = [message["content"]] if isinstance(message.get("content"), str) else []
    for call in message.get("tool_calls") or []:
        arguments = call.get("function", {}).get("arguments")
        texts.append(arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False))
    return texts


def make_codec(mode: ValuesMode) -> ValueCodec | None:
    """The codec of a values mode: None for ``literal``."""
    return ValueCodec() if mode == "placeholders" else None
