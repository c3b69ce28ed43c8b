"""Tokenizers: characters, words, byte-level BPE, behind one interface.

Every tokenizer has ``kind``, ``vocab_size``, ``encode(text) -> int32 [N]``,
``decode(ids) -> str`` and ``save(directory)``, which writes ``tokenizer.json`` (our own JSON
with a ``"kind"`` field) that :func:`load_tokenizer` reads back. Build one from a training
text with :func:`build_tokenizer`.
"""

import collections
import json
import re
from pathlib import Path
from typing import Protocol

import numpy as np

from seqjax.data.errors import OutOfVocabularyError

TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 1
DEFAULT_BPE_VOCAB_SIZE = 1024
MAX_REPORTED_SYMBOLS = 10


class Tokenizer(Protocol):
    """What the trainer and the sampler rely on."""

    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids) -> str: ...

    def save(self, directory) -> Path: ...


def _as_ids(ids, vocab_size):
    """``ids`` (a scalar or sequence) as a flat int64 array, checked against ``[0, vocab_size)``."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)]
        raise ValueError(f"token ids {bad[:MAX_REPORTED_SYMBOLS].tolist()} are outside the "
                         f"vocabulary [0, {vocab_size})")
    return ids


def _pieces(text):
    """``text`` as an iterable of strings: a string alone, or the given iterable (e.g. the
    files of a corpus, read one at a time)."""
    return [text] if isinstance(text, str) else text


def _write_json(directory, payload):
    """Write ``payload`` plus the format version to ``directory/tokenizer.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TOKENIZER_FILE
    path.write_text(json.dumps({**payload, "format_version": FORMAT_VERSION}), encoding="utf-8")
    return path


class CharTokenizer:
    """One token per character; the vocabulary: the sorted distinct characters of the training text.

    Encoding is vectorized: the text's UTF-32 code points are looked up by binary search in
    the sorted vocabulary's code points, so a 1 MB corpus encodes in milliseconds.
    """

    kind = "char"

    def __init__(self, vocab):
        chars = sorted(set(vocab))
        if not chars or any(len(c) != 1 for c in chars):
            raise ValueError("a character vocabulary needs at least one symbol, each one character")
        self.vocab = chars
        self._code_points = np.array([ord(c) for c in chars], dtype=np.uint32)

    @classmethod
    def train(cls, text):
        """The vocabulary of ``text``: a string, or an iterable of strings (e.g. files)."""
        chars = set()
        for piece in _pieces(text):
            chars.update(piece)
        if not chars:
            raise ValueError("cannot build a character vocabulary from empty text")
        return cls(chars)

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        ids = np.searchsorted(self._code_points, code_points)
        known = self._code_points[np.minimum(ids, self.vocab_size - 1)] == code_points
        if not known.all():
            unknown = [chr(c) for c in dict.fromkeys(code_points[~known].tolist())]
            shown = ", ".join(repr(c) for c in unknown[:MAX_REPORTED_SYMBOLS])
            hidden = len(unknown) - MAX_REPORTED_SYMBOLS
            more = f" and {hidden} more" if hidden > 0 else ""
            raise OutOfVocabularyError(
                f"characters {shown}{more} are not in the training corpus's vocabulary "
                f"({self.vocab_size} characters): remove or replace them")
        return ids.astype(np.int32)

    def decode(self, ids):
        ids = _as_ids(ids, self.vocab_size)
        return self._code_points[ids].astype("<u4").tobytes().decode("utf-32-le")

    def to_dict(self):
        return {"kind": self.kind, "vocab": self.vocab}

    def save(self, directory):
        return _write_json(directory, self.to_dict())

    @classmethod
    def from_dict(cls, payload):
        return cls(payload["vocab"])


class WordTokenizer:
    """Words, punctuation marks and whitespace runs; round-trips in-vocabulary text.

    Tokens are the matches of ``\\w+|[^\\w\\s]|\\s+``, which tile any text. Id 0 is ``<unk>``,
    given to every token outside the vocabulary (it decodes to the literal ``"<unk>"``); the
    others are ordered by decreasing training frequency (ties by token). ``max_vocab_size``
    (``<unk>`` included) keeps only the most frequent.
    """

    kind = "word"
    unk_token = "<unk>"
    unk_id = 0
    pattern = re.compile(r"\w+|[^\w\s]|\s+")

    def __init__(self, vocab):
        if not vocab or vocab[0] != self.unk_token:
            raise ValueError(f"a word vocabulary starts with {self.unk_token!r}")
        self.vocab = list(vocab)
        self._ids = {token: i for i, token in enumerate(self.vocab)}

    @classmethod
    def train(cls, text, max_vocab_size=None):
        if max_vocab_size is not None and max_vocab_size < 2:
            raise ValueError(
                f"max_vocab_size must be at least 2 (<unk> and one word), got {max_vocab_size}")
        counts = collections.Counter()
        for piece in _pieces(text):
            counts.update(cls.pattern.findall(piece))
        if not counts:
            raise ValueError("cannot build a word vocabulary from empty text")
        tokens = sorted(counts, key=lambda token: (-counts[token], token))
        keep = None if max_vocab_size is None else max_vocab_size - 1
        return cls([cls.unk_token] + tokens[:keep])

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        ids = [self._ids.get(token, self.unk_id) for token in self.pattern.findall(text)]
        return np.array(ids, dtype=np.int32)

    def decode(self, ids):
        return "".join(self.vocab[i] for i in _as_ids(ids, self.vocab_size).tolist())

    def to_dict(self):
        return {"kind": self.kind, "vocab": self.vocab}

    def save(self, directory):
        return _write_json(directory, self.to_dict())

    @classmethod
    def from_dict(cls, payload):
        return cls(payload["vocab"])


class BPETokenizer:
    """Byte-level BPE (GPT-2 style) from HuggingFace ``tokenizers``; round-trips any text.

    The 256 byte symbols are always in the vocabulary, so nothing is ever out of vocabulary;
    training adds merges until ``vocab_size`` tokens (fewer if the text runs out of pairs).
    """

    kind = "bpe"

    def __init__(self, hf_tokenizer):
        self._tokenizer = hf_tokenizer

    @classmethod
    def train(cls, text, vocab_size=DEFAULT_BPE_VOCAB_SIZE):
        from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers

        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if vocab_size < len(alphabet):
            raise ValueError(f"byte-level BPE needs vocab_size >= {len(alphabet)} (one token per "
                             f"byte), got {vocab_size}")
        if isinstance(text, str) and not text:
            raise ValueError("cannot train BPE on empty text")
        hf_tokenizer = HFTokenizer(models.BPE())
        hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf_tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet,
                                      special_tokens=[], show_progress=False)
        hf_tokenizer.train_from_iterator(_pieces(text), trainer)
        return cls(hf_tokenizer)

    @property
    def vocab_size(self):
        return self._tokenizer.get_vocab_size()

    def encode(self, text):
        return np.array(self._tokenizer.encode(text).ids, dtype=np.int32)

    def decode(self, ids):
        ids = _as_ids(ids, self.vocab_size).tolist()
        return self._tokenizer.decode(ids, skip_special_tokens=False)

    def encode_batch(self, texts):
        """``[encode(text) for text in texts]``, the texts encoded in parallel threads."""
        return [np.array(e.ids, dtype=np.int32) for e in self._tokenizer.encode_batch(list(texts))]

    def to_dict(self):
        return {"kind": self.kind, "hf_tokenizer": self._tokenizer.to_str()}

    def save(self, directory):
        return _write_json(directory, self.to_dict())

    @classmethod
    def from_dict(cls, payload):
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(payload["hf_tokenizer"]))


TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer}


def _tokenizer_class(kind):
    try:
        return TOKENIZERS[kind]
    except KeyError:
        raise ValueError(f"unknown tokenizer kind {kind!r}: choose one of "
                         f"{', '.join(sorted(TOKENIZERS))}") from None


def build_tokenizer(kind, text, *, vocab_size=None):
    """A ``kind`` tokenizer (``"char"``, ``"word"`` or ``"bpe"``) trained on ``text``: a
    string, or an iterable of strings read once (e.g. the files of a corpus).

    ``vocab_size`` caps the word vocabulary, sets the BPE vocabulary (default
    ``DEFAULT_BPE_VOCAB_SIZE``) and is ignored by ``"char"``, whose vocabulary is the text's.
    """
    tokenizer_class = _tokenizer_class(kind)
    if kind == "word":
        return tokenizer_class.train(text, max_vocab_size=vocab_size)
    if kind == "bpe":
        return tokenizer_class.train(text, vocab_size=vocab_size or DEFAULT_BPE_VOCAB_SIZE)
    return tokenizer_class.train(text)


def load_tokenizer(directory):
    """The tokenizer saved in ``directory/tokenizer.json`` by its ``save``."""
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {TOKENIZER_FILE} in {directory}: point at the folder a "
                                f"tokenizer was saved to (e.g. a training run's folder)")
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {payload.get('format_version')!r}, this "
                         f"seqjax reads version {FORMAT_VERSION}")
    return _tokenizer_class(payload.get("kind")).from_dict(payload)
