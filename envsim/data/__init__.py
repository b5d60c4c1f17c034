"""Fitted statistics shipped with envsim (no corpus text): the affect lexicon."""
