"""The transcript user's turn index: the human user turns of STAR as compact arrays, built once per corpus.

:func:`load_index` reads the corpus once per process (lazily; cached per corpus path) into a
:class:`TurnIndex`: one row per human user turn of the *fitting* STAR dialogues (the calibration's
split, :func:`envsim.calibrate.is_heldout`; held-out dialogues are never retrieved), grouped by
persona category (:func:`envsim.calibrate.classify`). Dialogues outside every persona instruction
(the calm pool) are sampled, :data:`CALM_SAMPLE_SHARE` of them, by a hash of their id. Each row
holds small codes, all from the rules of :mod:`envsim.user.transcript.text`:

- the *context*: the agent (wizard) turn it answers, kept as its act (:func:`~.text.agent_act`), its
  question topics (:data:`~.text.CUES`), the details its questions and requests ask for (``asks``:
  :data:`~.text.FACT_TOPICS` bits) and its content words in an inverted index
  (:class:`~envsim.user.transcript.context.ContentIndex`);
- the turn's own content words, in an inverted index of their own (``said``: how much a turn reads like
  the scenario's goal, when a user states its need);
- the turn's own dialogue act (:func:`~.text.user_act`);
- its mood (calm, confused, hostile, panicky) from :mod:`envsim.user.affect_scorer`: the affect whose
  score is highest relative to the calm group's 90th percentile, when above it;
- its entity spans by kind (:func:`~.text.entity_spans`, with names learnt from the corpus'
  capitalisation, :func:`~.text.learn_names`);
- whether it says the user does not know or have something (:data:`~.text.UNSURE`);
- whether it is *generic*: no content word (detail words such as name or number aside) is
  concentrated in one STAR domain (:data:`GENERIC_MAX_SHARE`), so it reads right in any business;
- its dialogue's STAR domains (``domains``), and of those the ones the turn itself is about (``own_domains``,
  :data:`OWNER_SHARE`): a dialogue of several tasks tags each turn with all of them.

The index also fits, once, a coherence model on its (agent turn, reply) pairs
(:meth:`TurnIndex.coherence`, :class:`~envsim.user.transcript.coherence.CoherenceModel`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from envsim.transcripts.corpus import corpus_dir
from envsim.transcripts.schema import Conversation
from envsim.user.affect import asking_text, read_part
from envsim.user.persona import Exemplar
from envsim.user.transcript.coherence import CoherenceModel
from envsim.user.transcript.context import ContentIndex
from envsim.user.transcript.corpus import CORPUS, read_star, star_file
from envsim.user.transcript.text import (
    AGENT_ACTS,
    CUE,
    FACT_CLASS,
    TOPIC_MASK,
    UNSURE,
    USER_ACTS,
    AgentAct,
    Names,
    SpanKind,
    agent_act,
    answer_polarity,
    cue_mask,
    entity_spans,
    learn_names,
    user_act,
)

CALM_SAMPLE_SHARE = 0.15
"""Share of the dialogues without a persona instruction (the calm pool) that are indexed."""

GENERIC_MAX_SHARE = 0.3
"""A word is domain-specific when one STAR domain has this share or more of its use (rates per dialogue,
normalised over the domains); a turn is generic when none of its content words is, nor rare."""

GENERIC_MIN_DIALOGUES = 3
"""A content word used in fewer indexed dialogues than this counts as domain-specific (too rare to tell)."""

OWNER_SHARE = 0.6
"""A content word belongs to one STAR domain when that domain has this share or more of its use in the dialogues
of a single task (rates per dialogue, normalised over the domains): a turn of a dialogue of several tasks that says
it is tagged with that domain alone."""


Mood = Literal["calm", "confused", "hostile", "panicky"]
"""The mood of a human user turn, from its affect scores."""
MOODS: tuple[Mood, ...] = get_args(Mood)
"""Every :data:`Mood`."""


COHERENCE_MIN_PAIRS = 50
"""Distinct agent turns an index needs before its coherence model is fitted (a smaller one rejects nothing)."""


LENGTH_BINS = (1, 2, 3, 5, 8, 12, 18, 27)
"""Lower edges (in words) of the length bins: with and without a question mark, the strata whose
shares retrieval keeps (:func:`~envsim.user.transcript.user.keep_lengths`)."""


def _stratum(text: str) -> int:
    """The length bin (:data:`LENGTH_BINS`) of a turn, times two, plus one for a question."""
    length = max(0, int(np.searchsorted(LENGTH_BINS, len(text.split()), side="right")) - 1)
    return 2 * length + ("?" in text)


# -- the index -------------------------------------------------------------------------------

_WORDS = re.compile(r"[a-z]+")
_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "it's",
        "this",
        "that",
        "i",
        "i'm",
        "i'd",
        "i'll",
        "me",
        "my",
        "you",
        "your",
        "we",
        "our",
        "us",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "will",
        "should",
        "have",
        "has",
        "had",
        "not",
        "no",
        "yes",
        "so",
        "just",
        "what",
        "when",
        "where",
        "which",
        "who",
        "how",
        "there",
        "here",
        "then",
        "than",
        "please",
        "ok",
        "okay",
    ]
)


@dataclass
class TurnIndex:
    """Human user turns of a corpus as compact arrays (one row per turn), for retrieval.

    ``texts`` are read from the corpus at run time and kept only in memory; ``contexts`` are the agent
    (wizard) turns they answer, ``asks`` the details those turns ask for (:data:`~.text.FACT_TOPICS` bits of
    their questions and requests), ``content`` their words (:class:`~envsim.user.transcript.context.ContentIndex`);
    ``said`` the words of the turns themselves.
    """

    _coherence: CoherenceModel | None = field(default=None, init=False, repr=False)
    _spans: dict[int, list[tuple[int, int, SpanKind]]] = field(default_factory=dict, init=False, repr=False)

    texts: list[str]
    contexts: list[str]
    asks: np.ndarray
    content: ContentIndex
    said: ContentIndex
    dialogue_ids: list[str]
    turn_index: np.ndarray
    group: np.ndarray
    context: np.ndarray
    cues: np.ndarray
    topics: np.ndarray
    act: np.ndarray
    mood: np.ndarray
    n_text: np.ndarray
    n_digits: np.ndarray
    n_other: np.ndarray
    n_when: np.ndarray
    stratum: np.ndarray
    last: np.ndarray
    bare: np.ndarray
    unsure: np.ndarray
    polar: np.ndarray
    generic: np.ndarray
    domains: np.ndarray
    own_domains: np.ndarray
    groups: tuple[str, ...]
    domain_names: tuple[str, ...]
    names: Names
    dialogue_groups: dict[str, str] = field(default_factory=dict)
    corpus: str = CORPUS

    def __len__(self) -> int:
        """The number of indexed turns."""
        return len(self.texts)

    def coherence(self) -> CoherenceModel | None:
        """The coherence model fitted on this index's (agent turn, reply) pairs (fitted once; ``None``: too few)."""
        if self._coherence is None:
            pairs = [(c, t) for c, t in zip(self.contexts, self.texts, strict=True) if c.strip()]
            if len({c for c, _ in pairs}) >= COHERENCE_MIN_PAIRS:
                self._coherence = CoherenceModel.fit(pairs, seed=0)
        return self._coherence

    def spans(self, row: int) -> list[tuple[int, int, SpanKind]]:
        """The entity spans of row ``row``'s text (:func:`~.text.entity_spans` with the corpus' names; kept once
        found)."""
        found = self._spans.get(row)
        if found is None:
            found = self._spans[row] = entity_spans(self.texts[row], self.names)
        return found

    def ref(self, row: int) -> Exemplar:
        """The corpus reference (corpus, dialogue id, turn index) of row ``row``."""
        return Exemplar(corpus=self.corpus, dialogue_id=self.dialogue_ids[row], turn_index=int(self.turn_index[row]))

    def domain_mask(self, names: Iterable[str]) -> int:
        """The bit mask of the corpus domains among ``names`` (``banking`` counts as ``bank``)."""
        mask = 0
        for name in names:
            low = name.lower()
            for bit, domain in enumerate(self.domain_names):
                if low == domain or low.startswith(domain):
                    mask |= 1 << bit
        return mask


def _domain_words(
    rows: Sequence[tuple[Any, ...]], domain_names: Sequence[str]
) -> tuple[frozenset[str], dict[str, int]]:
    """Content words too rare or too concentrated in one domain for a turn to read right elsewhere, and of the
    concentrated ones, the domain each belongs to (its index in ``domain_names``)."""
    dialogues: dict[str, list[str]] = {}
    words: dict[str, set[str]] = {}
    for text, dialogue_id, *_, domains in rows:
        dialogues[dialogue_id] = domains
        words.setdefault(dialogue_id, set()).update(_WORDS.findall(text.lower()))
    sizes = np.zeros(len(domain_names))
    use: dict[str, np.ndarray] = {}
    for dialogue_id, found in words.items():
        bits = np.zeros(len(domain_names))
        bits[[domain_names.index(d) for d in set(dialogues[dialogue_id])]] = 1.0
        sizes += bits
        for word in found:
            if len(word) >= 3 and word not in _STOP and not CUE.match(word):
                use[word] = use.get(word, 0.0) + bits
    rates = {w: u / np.maximum(sizes, 1.0) for w, u in use.items()}
    specific = frozenset(
        w
        for w, r in rates.items()
        if use[w].sum() < GENERIC_MIN_DIALOGUES or r.max() >= GENERIC_MAX_SHARE * max(r.sum(), 1e-12)
    )
    # which domain a word belongs to, from the dialogues of one task only (a bank-and-restaurant dialogue's are both's)
    single = np.zeros(len(domain_names))
    alone: dict[str, np.ndarray] = {}
    for dialogue_id, found in words.items():
        tasks = set(dialogues[dialogue_id])
        if len(tasks) != 1:
            continue
        d = domain_names.index(tasks.pop())
        single[d] += 1
        for word in found & specific:
            alone.setdefault(word, np.zeros(len(domain_names)))[d] += 1
    owner = {}
    for word, u in alone.items():
        r = u / np.maximum(single, 1.0)
        if u.sum() >= GENERIC_MIN_DIALOGUES and r.max() >= OWNER_SHARE * r.sum():
            owner[word] = int(r.argmax())
    return specific, owner


def _turn_domains(domains: Sequence[str], texts: Sequence[str], owner: dict[str, int], names: Sequence[str]) -> int:
    """The domain bits of one turn: of its dialogue's domains, those its own words belong to, else those the words of
    the agent turn it answers belong to, else all of them. A dialogue of several tasks (a bank check, then a
    restaurant) tags every turn with every task; 'Can I check my bank balance?' is no restaurant request.

    Example:
        >>> owner = {"balance": 0, "cuisine": 1}
        >>> _turn_domains(["bank", "restaurant"], ("Can I check my balance?", "How can I help?"), owner, ["bank",
        ...     "restaurant"]), _turn_domains(["bank", "restaurant"], ("Thai", "What cuisine?"), owner, ["bank",
        ...     "restaurant"]), _turn_domains(["bank", "restaurant"], ("Yes", "Anything else?"), owner, ["bank",
        ...     "restaurant"])
        (1, 2, 3)
    """
    mine = {names.index(d) for d in set(domains)}
    for text in texts:
        found = {owner[w] for w in _WORDS.findall(text.lower()) if w in owner} & mine
        if found:
            return sum(1 << d for d in found)
    return sum(1 << d for d in mine)


def build_index(conversations: Iterable[Conversation], *, corpus: str = CORPUS) -> TurnIndex:
    """Index the user turns of ``conversations`` that fall in a persona category (see the module docstring)."""
    from envsim.calibrate import classify
    from envsim.user.affect_scorer import default_scorer

    rows: list[tuple[str, str, int, str, AgentAct, int, list[str]]] = []
    contexts: list[str] = []  # the agent turn each row answers ("" for a dialogue's first user turns)
    all_text: list[str] = []
    dialogue_groups: dict[str, str] = {}
    for conversation in conversations:
        group = classify(conversation)
        if group is None:
            continue
        dialogue_groups[conversation.id] = group
        domains = [str(d) for d in conversation.labels.get("domains") or [] if d]
        context: AgentAct = "none"
        cues = 0
        context_text = ""
        for position, turn in enumerate(conversation.turns):
            if turn.role == "agent":
                all_text.append(turn.text)
                context = agent_act(turn.text)
                cues = cue_mask(turn.text)
                context_text = turn.text
            elif turn.role == "user" and turn.text.strip():
                all_text.append(turn.text)
                rows.append((turn.text, conversation.id, position, group, context, cues, domains))
                contexts.append(context_text)
    names = learn_names(all_text)
    texts = [r[0] for r in rows]
    groups = tuple(sorted({r[3] for r in rows}))
    domain_names = tuple(sorted({d for r in rows for d in r[6]}))
    specific, owner = _domain_words(rows, domain_names)
    n = len(rows)
    n_text = np.zeros(n, dtype=np.int8)
    n_digits = np.zeros(n, dtype=np.int8)
    n_other = np.zeros(n, dtype=np.int8)
    n_when = np.zeros(n, dtype=np.int8)
    generic = np.zeros(n, dtype=bool)
    bare = np.zeros(n, dtype=bool)
    for i, text in enumerate(texts):
        spans = entity_spans(text, names)
        for _, _, kind in spans:
            cls = FACT_CLASS[kind]
            counter = n_text if cls == "text" else n_digits if cls == "digits" else n_other
            counter[i] = min(int(counter[i]) + 1, 100)
            if kind in ("date", "time"):
                n_when[i] = min(int(n_when[i]) + 1, 100)
        rest = text
        for start, end, _ in reversed(spans):
            rest = rest[:start] + " " + rest[end:]
        generic[i] = not any(w in specific for w in _WORDS.findall(rest.lower()))
        bare[i] = not _WORDS.search(rest.lower())
    scores = default_scorer().score_many(texts) if texts else None
    mood = np.zeros(n, dtype=np.int8)
    if scores is not None:
        scores["hostility"] = scores[["anger", "annoyance"]].max(axis=1)
        scores["panic"] = scores[["fear", "nervousness"]].max(axis=1)
        group_col = np.array([r[3] for r in rows])
        calm = scores[group_col == "star_calm"] if (group_col == "star_calm").any() else scores
        thresholds = {name: float(calm[name].quantile(0.9)) for name in ("confusion", "hostility", "panic")}
        ratios = scores[["confusion", "hostility", "panic"]].to_numpy() / np.maximum(
            [thresholds["confusion"], thresholds["hostility"], thresholds["panic"]], 1e-9
        )
        mood = np.where(ratios.max(axis=1) > 1.0, ratios.argmax(axis=1) + 1, 0).astype(np.int8)
    return TurnIndex(
        texts=texts,
        contexts=contexts,
        asks=np.array([cue_mask(asking_text(read_part(c))) & TOPIC_MASK for c in contexts], dtype=np.int64),
        content=ContentIndex.build(contexts),
        said=ContentIndex.build(texts),
        dialogue_ids=[r[1] for r in rows],
        turn_index=np.array([r[2] for r in rows], dtype=np.int32),
        group=np.array([groups.index(r[3]) for r in rows], dtype=np.int16),
        context=np.array([AGENT_ACTS.index(r[4]) for r in rows], dtype=np.int8),
        cues=np.array([r[5] for r in rows], dtype=np.int64),
        topics=np.array([cue_mask(t) & TOPIC_MASK for t in texts], dtype=np.int64),
        act=np.array([USER_ACTS.index(user_act(t)) for t in texts], dtype=np.int8),
        mood=mood,
        n_text=n_text,
        n_digits=n_digits,
        n_other=n_other,
        n_when=n_when,
        last=np.array([i + 1 == len(rows) or rows[i + 1][1] != r[1] for i, r in enumerate(rows)], dtype=bool),
        stratum=np.array([_stratum(t) for t in texts], dtype=np.int64),
        generic=generic,
        bare=bare,
        unsure=np.array([UNSURE.search(t.lower()) is not None for t in texts], dtype=bool),
        polar=np.array([USER_ACTS.index(p) if (p := answer_polarity(t)) else -1 for t in texts], dtype=np.int8),
        domains=np.array([sum(1 << domain_names.index(d) for d in set(r[6])) for r in rows], dtype=np.int64),
        own_domains=np.array(
            [_turn_domains(r[6], (t, c), owner, domain_names) for r, t, c in zip(rows, texts, contexts, strict=True)],
            dtype=np.int64,
        ),
        groups=groups,
        domain_names=domain_names,
        names=names,
        dialogue_groups=dialogue_groups,
        corpus=corpus,
    )


def _fitting(dialogue_id: str) -> bool:
    from envsim.calibrate import is_heldout

    return not is_heldout(CORPUS, dialogue_id)


@lru_cache(maxsize=4)
def _load(location: str) -> TurnIndex | None:
    path = star_file(location)
    if not path.exists():
        return None
    index = build_index(read_star(path, _fitting, CALM_SAMPLE_SHARE))
    return index if len(index) else None


def load_index(corpus: str | Path | None = None) -> TurnIndex | None:
    """The turn index of the corpus under ``corpus`` (default :func:`~envsim.transcripts.corpus.corpus_dir`), built
    once per process.

    ``None`` when there is no corpus (no folder, or no STAR dialogues in it).
    """
    where = corpus_dir(corpus)
    if where is None:
        return None
    return _load(str(Path(where).resolve()))


def forget_indexes() -> None:
    """Forget the indexes :func:`load_index` built in this process (the next call reads the corpus again)."""
    _load.cache_clear()
