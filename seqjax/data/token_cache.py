"""Token files: a corpus tokenized once, then memory-mapped by every run that reads it.

A file corpus (:mod:`seqjax.data.file_corpus`) or one text (:mod:`seqjax.data.text_corpus`,
whose two "files" are its training and validation parts, read in pieces) is tokenized piece by
piece into two flat files
of token ids, ``train.bin`` and ``val.bin`` (``uint16`` when the vocabulary has at most
65,536 tokens, else ``uint32``), and a later run, a resume or another process opens them with
``np.memmap``: nothing is tokenized again, and a batch reads only the rows it needs, so a
process's memory does not grow with the corpus. The tokenizer trained on the training files
is kept beside them, so several runs on one corpus train it once.

Layout, under the cache folder (``cache_dir``, else ``$SEQJAX_CACHE_DIR``, else
``~/.cache/seqjax``)::

    tokenizers/<key>/tokenizer.json        key: corpus fingerprint, split, kind, vocab size
    tokens/<key>/{train.bin, val.bin, meta.json}   key: corpus fingerprint, split, tokenizer

Each entry is written into a temporary folder and renamed into place whole, so a reader never
sees half of one, and two processes that build the same entry keep one of them. When the
cache folder cannot be written, the tokens stay in memory (with a warning).
"""

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from seqjax.data.tokenizers import TOKENIZER_FILE, build_tokenizer, load_tokenizer

CACHE_DIR_VARIABLE = "SEQJAX_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/seqjax"
FORMAT_VERSION = 1
FILES_PER_BATCH = 64  # texts encoded together (in parallel by BPE's encode_batch), at most
CHARS_PER_BATCH = 2**22  # ... and about this many characters (BPE takes ~200 B/char for it)


def resolve_cache_dir(cache_dir=None):
    """The cache folder: ``cache_dir``, else ``$SEQJAX_CACHE_DIR``, else ``~/.cache/seqjax``."""
    chosen = cache_dir or os.environ.get(CACHE_DIR_VARIABLE) or DEFAULT_CACHE_DIR
    return Path(chosen).expanduser().resolve()


def token_dtype(vocab_size):
    """The narrowest unsigned dtype that holds ids ``0 .. vocab_size - 1``."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def _key(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _encode_files(tokenizer, texts):
    """The id arrays of ``texts`` (a list), in parallel where the tokenizer can."""
    encode_batch = getattr(tokenizer, "encode_batch", None)
    return encode_batch(texts) if encode_batch else [tokenizer.encode(t) for t in texts]


def _batches(texts):
    """``texts`` (an iterable) in lists of at most ``FILES_PER_BATCH`` texts or about
    ``CHARS_PER_BATCH`` characters."""
    batch, chars = [], 0
    for text in texts:
        batch.append(text)
        chars += len(text)
        if len(batch) == FILES_PER_BATCH or chars >= CHARS_PER_BATCH:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def write_token_file(path, corpus, files, tokenizer):
    """Append the ids of ``files`` (in order) to ``path``; returns how many were written."""
    dtype, count = token_dtype(tokenizer.vocab_size), 0
    with open(path, "wb") as out:
        for texts in _batches(corpus.texts(files)):
            for ids in _encode_files(tokenizer, texts):
                out.write(np.asarray(ids).astype(dtype).tobytes())
                count += len(ids)
    return count


def _publish(temporary, final):
    """Rename the folder ``temporary`` to ``final``; if another process got there first, keep
    theirs and delete ours."""
    try:
        os.rename(temporary, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(temporary, ignore_errors=True)


def _new_entry_folder(parent):
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=".building-"))


def cached_tokenizer(corpus, train_files, kind, vocab_size, cache_dir=None):
    """The ``kind`` tokenizer of ``corpus``, trained on ``train_files`` once and then loaded.

    A character vocabulary is read from every file (so validation has no unknown
    character), a word or BPE vocabulary from the training files only.
    """
    source = corpus.files if kind == "char" else train_files
    key = _key("tokenizer", FORMAT_VERSION, corpus.fingerprint(), list(train_files), kind,
               vocab_size)
    final = resolve_cache_dir(cache_dir) / "tokenizers" / key
    if (final / TOKENIZER_FILE).is_file():
        return load_tokenizer(final)
    tokenizer = build_tokenizer(kind, corpus.texts(source), vocab_size=vocab_size)
    try:
        temporary = _new_entry_folder(final.parent)
        tokenizer.save(temporary)
        _publish(temporary, final)
    except OSError as error:
        warnings.warn(f"cannot keep the tokenizer in the cache ({error}); it will be trained "
                      f"again next time: set {CACHE_DIR_VARIABLE} to a writable folder")
    return tokenizer


def _entry_is_complete(folder, vocab_size):
    """``meta.json`` is there and both token files hold the bytes it promises."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        itemsize = token_dtype(vocab_size).itemsize
        return all((folder / f"{split}.bin").stat().st_size == meta[f"{split}_tokens"] * itemsize
                   for split in ("train", "val"))
    except (OSError, ValueError, KeyError):
        return False


def _open_entry(folder, vocab_size):
    dtype = token_dtype(vocab_size)
    meta = json.loads((folder / "meta.json").read_text())
    return tuple(np.memmap(folder / f"{split}.bin", dtype=dtype, mode="r",
                           shape=(meta[f"{split}_tokens"],)) for split in ("train", "val"))


def _build_entry(folder, corpus, splits, tokenizer):
    counts = {f"{name}_tokens": write_token_file(folder / f"{name}.bin", corpus, files, tokenizer)
              for name, files in zip(("train", "val"), splits)}
    meta = {"format_version": FORMAT_VERSION, "corpus": corpus.name, "root": str(corpus.root),
            "tokenizer": tokenizer.kind, "vocab_size": tokenizer.vocab_size,
            "dtype": token_dtype(tokenizer.vocab_size).name, "train_files": len(splits[0]),
            "val_files": len(splits[1]), **counts}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))


def _in_memory(corpus, splits, tokenizer):
    dtype = token_dtype(tokenizer.vocab_size)
    return tuple(np.concatenate([np.asarray(ids).astype(dtype) for ids in
                                 _encode_files(tokenizer, list(corpus.texts(files)))] or
                                [np.zeros(0, dtype)]) for files in splits)


def cached_token_splits(corpus, splits, tokenizer, cache_dir=None):
    """``(train_tokens, val_tokens)``: read-only memory maps of ``corpus``'s files ``splits =
    (train_files, val_files)`` tokenized by ``tokenizer``, written on first use.

    An entry whose files do not hold what its ``meta.json`` says (damaged or cut short
    after it was written) is deleted and rebuilt: it is a cache, rebuilt from the corpus.
    """
    key = _key("tokens", FORMAT_VERSION, corpus.fingerprint(), [list(s) for s in splits],
               tokenizer.to_dict())
    final = resolve_cache_dir(cache_dir) / "tokens" / key
    if final.is_dir() and not _entry_is_complete(final, tokenizer.vocab_size):
        shutil.rmtree(final, ignore_errors=True)
    if not final.is_dir():
        try:
            temporary = _new_entry_folder(final.parent)
        except OSError as error:
            warnings.warn(f"cannot write token files under {final.parent} ({error}); tokenizing "
                          f"into memory instead: set {CACHE_DIR_VARIABLE} to a writable folder")
            return _in_memory(corpus, splits, tokenizer)
        try:
            _build_entry(temporary, corpus, splits, tokenizer)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        _publish(temporary, final)
    return _open_entry(final, tokenizer.vocab_size)
