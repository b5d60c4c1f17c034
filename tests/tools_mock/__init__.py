"""Tests of the mocked enterprise systems."""
