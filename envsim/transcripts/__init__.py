"""Transcripts: the canonical conversation schema, importers of published formats, statistics.

The corpora are human-written, role-played conversations (STAR, ABCD), crowd-written queries
(BANKING77) and Reddit comments (GoEmotions), not real customer calls. They are read from the
folder :func:`envsim.transcripts.corpus.corpus_dir` names; none of their text is in this
repository.
"""

from envsim.transcripts.schema import Conversation, Turn

__all__ = ["Conversation", "Turn"]
