"""One text as a corpus: read in pieces, tokenized once into token files, never held whole."""

import os
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from ml_collections import ConfigDict

from seqjax.data import CorpusError, build_tokenizer, split_train_val, text_corpus
from seqjax.language_data import prepare_language_data

text_corpus_module = sys.modules["seqjax.data.text_corpus"]  # the name is also its function's
# Source code with blank lines, indentation, trailing spaces, CRLF line ends and multi-byte
# characters (some starting a line): every kind of whitespace run a piece may end before.
SOURCE = (Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py").read_text()
LINES = [line[:70] + ("  " if i % 7 == 0 else "") for i, line in enumerate(SOURCE.splitlines())]
TEXT = ("\n".join(LINES[:150] + ["日本語 déjà vu — ½ ∑ 🐍", "\u3000x = 'ü'", "", "", "½ it's"])
        + "\r\n".join([""] + LINES[150:220]) + "\n".join(LINES[220:]) + "\n")


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of at most 200 bytes and split scans of 50: many cuts, the split mid-scan."""
    monkeypatch.setattr(text_corpus_module, "PIECE_BYTES", 200)
    monkeypatch.setattr(text_corpus_module, "SCAN_BYTES", 50)


def write(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize("in_memory", [False, True], ids=["file", "bytes"])
def test_the_pieces_make_up_the_90_percent_split(tmp_path, small_pieces, in_memory):
    corpus = (text_corpus_module.TextCorpus("t", data=TEXT.encode()) if in_memory
              else text_corpus(str(write(tmp_path, TEXT))))
    train, val = split_train_val(TEXT)
    pieces = list(corpus.texts(["train"]))
    assert len(pieces) > 20 and all(len(piece.encode()) <= 200 for piece in pieces)
    assert "".join(pieces) == train and "".join(corpus.texts(["val"])) == val


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_pieces_tokenize_as_the_whole_split(tmp_path, small_pieces, kind):
    corpus = text_corpus(str(write(tmp_path, TEXT)))
    source = corpus.files if kind == "char" else corpus.files[:1]
    tokenizer = build_tokenizer(kind, corpus.texts(source), vocab_size=400)
    whole_source = TEXT if kind == "char" else split_train_val(TEXT)[0]
    assert tokenizer.to_dict() == build_tokenizer(kind, whole_source, vocab_size=400).to_dict()
    for part, whole in zip(corpus.files, split_train_val(TEXT)):
        by_piece = np.concatenate([tokenizer.encode(p) for p in corpus.texts([part])])
        np.testing.assert_array_equal(by_piece, tokenizer.encode(whole))


def data_config(corpus, tokenizer="char"):
    return ConfigDict({"corpus": corpus, "tokenizer": tokenizer, "vocab_size": 300})


def test_a_text_file_is_tokenized_once_into_token_files(tmp_path, small_pieces, monkeypatch):
    path = write(tmp_path, TEXT)
    data = prepare_language_data(data_config(str(path)), tmp_path / "run", 65)
    train, val = split_train_val(TEXT)
    assert isinstance(data.train_tokens, np.memmap) and data.train_tokens.dtype == np.uint16
    np.testing.assert_array_equal(data.train_tokens, data.tokenizer.encode(train))
    np.testing.assert_array_equal(data.val_tokens, data.tokenizer.encode(val))

    def no_reading(*args):
        raise AssertionError("the text was read again")

    with monkeypatch.context() as patch:  # a resume, and a new run, open the token files
        patch.setattr(text_corpus_module.TextCorpus, "_pieces", no_reading)
        resumed = prepare_language_data(data_config(str(path)), tmp_path / "run", 65)
        fresh = prepare_language_data(data_config(str(path)), tmp_path / "other_run", 65)
    np.testing.assert_array_equal(resumed.train_tokens, data.train_tokens)
    np.testing.assert_array_equal(fresh.val_tokens, data.val_tokens)
    path.write_bytes(TEXT.replace("json", "JSON!").encode())  # a changed file is read again
    changed = prepare_language_data(data_config(str(path)), tmp_path / "third_run", 65)
    assert len(changed.train_tokens) > len(data.train_tokens)


def test_what_cannot_be_a_text_corpus_says_so_in_one_line(tmp_path):
    with pytest.raises(CorpusError, match="is empty"):
        text_corpus(str(write(tmp_path, "", "empty.txt")))
    with pytest.raises(CorpusError, match="too short to split"):
        list(text_corpus(str(write(tmp_path, "a", "short.txt"))).texts(["train"]))
    with pytest.raises(CorpusError, match="no corpus file at"):
        text_corpus(str(tmp_path / "missing.txt"))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(("caf\xe9 " * 100).encode("latin-1"))
    with pytest.raises(CorpusError, match="is not UTF-8 text.*convert it to UTF-8"):
        prepare_language_data(data_config(str(latin1)), tmp_path / "run", 10)
    tokens_cache = Path(os.environ["SEQJAX_CACHE_DIR"]) / "tokens"  # tests/conftest.py's
    assert not list(tokens_cache.glob(".building-*"))  # no half-written entry is left


def test_a_file_cut_short_while_it_is_read_stops_with_one_line(tmp_path, small_pieces):
    path = write(tmp_path, TEXT)
    corpus = text_corpus(str(path))
    pieces = corpus.texts(["train"])
    next(pieces)  # the split is known, the file is open
    path.write_bytes(TEXT[:300].encode())
    with pytest.raises(CorpusError, match="became shorter while it was read"):
        list(pieces)
