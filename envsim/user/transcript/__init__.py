"""The transcript user: an offline mock user whose every reply is a human-written user turn, retrieved and adapted.

Its replies are user turns of STAR (human-written, role-played task dialogues; see
``../shared/transcripts/README.md``), read at run time from :func:`envsim.transcripts.corpus.corpus_dir`;
no corpus text is in this repository. One module per job:

- :mod:`~envsim.user.transcript.corpus`: reading STAR (:func:`read_star`, :func:`star_file`);
- :mod:`~envsim.user.transcript.text`: text analysis by rules (dialogue acts, question topics, entity
  spans and names);
- :mod:`~envsim.user.transcript.index`: the turn index built once per corpus (:class:`TurnIndex`,
  :func:`load_index`);
- :mod:`~envsim.user.transcript.user`: the user (:class:`TranscriptUser`) and its retrieval;
- the user's text machinery: :mod:`~envsim.user.transcript.coherence` (does a reply fit the turn it
  answers), :mod:`~envsim.user.transcript.context` (content words of agent turns),
  :mod:`~envsim.user.transcript.fill` (clean span filling), :mod:`~envsim.user.transcript.style` (the
  persona's traits applied to a text).

``docs/users.md`` ("The transcript user") tells how a reply is chosen and adapted, and why.
"""

from __future__ import annotations

from envsim.user.transcript.corpus import CORPUS, read_star, star_file
from envsim.user.transcript.index import TurnIndex, build_index, load_index
from envsim.user.transcript.text import Names, agent_act, entity_spans, fact_kind, learn_names, user_act
from envsim.user.transcript.user import TranscriptUser, TurnSource, clear_cache, persona_group

__all__ = [
    "CORPUS",
    "Names",
    "TranscriptUser",
    "TurnIndex",
    "TurnSource",
    "agent_act",
    "build_index",
    "clear_cache",
    "entity_spans",
    "fact_kind",
    "learn_names",
    "load_index",
    "persona_group",
    "read_star",
    "star_file",
    "user_act",
]
