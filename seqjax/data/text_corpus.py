"""One text as a corpus, split at 90% of its characters and read in pieces, never whole.

A named corpus (``"tiny_shakespeare"``, ``"python_stdlib"``) or a UTF-8 text file of any size
becomes a corpus of two parts, ``"train"`` (the first 90% of its characters, as
:func:`seqjax.data.corpora.split_train_val` cuts them) and ``"val"`` (the rest), with the
interface of :class:`seqjax.data.file_corpus.FileCorpus`, so :mod:`seqjax.data.token_cache`
tokenizes it once into memory-mapped token files. A file is read from disk in pieces of about
``PIECE_BYTES``, so tokenizing it takes memory independent of its size; a later run, a resume
or another process opens the token files and does not read the text at all.

A piece ends where a run of whitespace that holds a newline starts after a character that is
not whitespace. Every seqjax tokenizer (char, word and byte-level BPE, whose pre-tokenizers
split there) starts a new token there anyway, so the token ids, and a vocabulary trained on the
pieces, equal those of the whole split. (A piece with no such point, a single line of a MB, is
cut at a character boundary, the one place where a word or BPE token may split in two.)
"""

import hashlib
import re
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from seqjax.data.corpora import (
    CORPUS_NAMES,
    TRAIN_FRACTION,
    checked_text_file,
    python_stdlib_text,
    resolve_data_dir,
    tiny_shakespeare_bytes,
    train_characters,
)
from seqjax.data.errors import CorpusError

PIECE_BYTES = 2**20  # a piece of text handed to the tokenizer
SCAN_BYTES = 2**24  # bytes counted at a time when finding the split


def _character_starts(block):
    """``[len(block)]`` bool: which bytes start a UTF-8 character (not ``10xxxxxx``)."""
    return (np.frombuffer(block, np.uint8) & 0xC0) != 0x80


# The start of a run of whitespace that holds a newline and follows a character that is not
# whitespace. \x1c-\x1f are whitespace to Python but not to the BPE's pre-tokenizer: left out.
_CUT = re.compile(r"(?<=\S)[^\S\x1c-\x1f]*?\n")


def _decoded_piece(block, name, offset, last):
    """The text of ``block`` (all of it when it is the ``last`` of its part) up to where a
    piece may end: the start of the last run of whitespace that holds a newline and follows a
    character that is not whitespace; else before the character ``block`` may have cut in two
    (a line of many MB)."""
    starts = np.flatnonzero(_character_starts(block))
    end = int(starts[-1]) if not last and len(starts) and starts[-1] > 0 else len(block)
    try:
        text = block[:end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"corpus {name!r} is not UTF-8 text ({error} in the piece at byte "
                          f"{offset}): convert it to UTF-8") from error
    if last:
        return text
    for tail in (2**16, len(text)):  # the last cut is almost always near the end
        cuts = list(_CUT.finditer(text, max(0, len(text) - tail)))
        if cuts:
            return text[: cuts[-1].start()]
    return text


class TextCorpus:
    """One UTF-8 text (a file, or bytes in memory) as the corpus ``("train", "val")``."""

    files = ("train", "val")

    def __init__(self, name, *, path=None, data=None):
        if (path is None) == (data is None):
            raise ValueError("give the text's path or its bytes, not both")
        self.name, self.path, self._data = name, path, data
        self.root = Path(path) if path is not None else Path(f"<{name}>")
        self.size = Path(path).stat().st_size if path is not None else len(data)
        if self.size == 0:
            raise CorpusError(f"corpus {name!r} is empty: give a text file with content")

    def fingerprint(self):
        """sha256 hex of the file's (path, size, modification time), or of the bytes in memory,
        and of the split and the cut rule: changes when they do, without reading a file."""
        digest = hashlib.sha256(f"text\0{TRAIN_FRACTION}\0{_CUT.pattern}\0{PIECE_BYTES}\0".encode())
        if self.path is None:
            digest.update(self._data)
        else:
            stat = Path(self.path).stat()
            digest.update(f"{Path(self.path).resolve()}\0{stat.st_size}\0"
                          f"{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def split(self):
        """``(train_files, val_files)``: ``(("train",), ("val",))``."""
        return self.files[:1], self.files[1:]

    def texts(self, files):
        """The pieces of text of ``files`` (``"train"``, ``"val"``), in order."""
        for part in files:
            if part == "train":
                yield from self._pieces(0, self._split_byte)
            else:
                yield from self._pieces(self._split_byte, self.size)

    @contextmanager
    def _reader(self):
        """``read(start, stop) -> bytes`` of the text."""
        if self.path is None:
            yield lambda start, stop: self._data[start:stop]
            return
        with open(self.path, "rb") as file:
            def read(start, stop):
                file.seek(start)
                return file.read(stop - start)
            yield read

    def _pieces(self, start, stop):
        with self._reader() as read:
            while start < stop:
                block = read(start, min(start + PIECE_BYTES, stop))
                if not block:
                    raise CorpusError(f"corpus {self.name!r} became shorter while it was read: "
                                      "keep the file unchanged while a run tokenizes it")
                text = _decoded_piece(block, self.name, start, last=start + len(block) >= stop)
                yield text
                start += len(text.encode("utf-8"))

    @cached_property
    def _split_byte(self):
        """The byte where character ``floor(0.9 * characters)`` starts (two reads at most)."""
        with self._reader() as read:
            counts = [int(_character_starts(read(start, min(start + SCAN_BYTES, self.size))).sum())
                      for start in range(0, self.size, SCAN_BYTES)]
            split = train_characters(sum(counts))
            block_index = int(np.searchsorted(np.cumsum(counts), split, side="right"))
            before = sum(counts[:block_index])
            block_start = block_index * SCAN_BYTES
            block = read(block_start, min(block_start + SCAN_BYTES, self.size))
            starts = np.flatnonzero(_character_starts(block))
            return block_start + int(starts[split - before])


def text_corpus(name_or_path, *, data_dir=None):
    """The :class:`TextCorpus` of a corpus name (:data:`CORPUS_NAMES`) or a UTF-8 text file."""
    if name_or_path == "tiny_shakespeare":
        return TextCorpus(name_or_path, data=tiny_shakespeare_bytes(resolve_data_dir(data_dir)))
    if name_or_path == "python_stdlib":
        return TextCorpus(name_or_path, data=python_stdlib_text().encode("utf-8"))
    assert name_or_path not in CORPUS_NAMES, name_or_path
    return TextCorpus(str(name_or_path), path=checked_text_file(Path(name_or_path).expanduser()))
