"""Exceptions of the data layer, each carrying a message that says how to fix the input."""

from seqjax.errors import SeqjaxError


class CorpusError(SeqjaxError, ValueError):
    """A corpus cannot be loaded: missing or empty file, failed download, bad checksum."""


class OutOfVocabularyError(SeqjaxError, ValueError):
    """Text to encode holds symbols outside the tokenizer's (training corpus's) vocabulary."""
