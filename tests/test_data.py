"""Specification of the data layer: corpora, tokenizers, batching."""

import hashlib
import io
import os
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from seqjax.data import corpora
from seqjax.data import (
    BPETokenizer,
    CharTokenizer,
    CorpusError,
    OutOfVocabularyError,
    WordTokenizer,
    build_tokenizer,
    download_verified,
    eval_windows,
    load_corpus,
    load_tokenizer,
    num_stream_windows,
    python_stdlib_text,
    random_windows,
    resolve_data_dir,
    split_train_val,
    stream_windows,
)

SMALL_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
) * 8


# ---------------------------------------------------------------- tokenizers


def test_char_tokenizer_ids_are_positions_in_sorted_vocab():
    tokenizer = CharTokenizer.train("hello world")
    assert tokenizer.vocab == sorted(set("hello world"))
    ids = tokenizer.encode("world hello")
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [tokenizer.vocab.index(c) for c in "world hello"])
    assert tokenizer.decode(ids) == "world hello"
    assert tokenizer.encode("").shape == (0,)


def test_char_tokenizer_round_trips_non_ascii():
    text = "naïve café — 😀 \r\n\tend"
    tokenizer = CharTokenizer.train(text)
    assert tokenizer.vocab_size == len(set(text))
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_char_tokenizer_out_of_vocabulary_message():
    tokenizer = CharTokenizer.train("abcdefgh Zer")
    with pytest.raises(OutOfVocabularyError) as error:
        tokenizer.encode("Zebra ü")
    message = str(error.value)
    assert repr("ü") in message and repr("b") not in message
    assert "not in the training corpus's vocabulary" in message


def test_char_tokenizer_out_of_vocabulary_lists_at_most_ten():
    tokenizer = CharTokenizer.train("a")
    with pytest.raises(OutOfVocabularyError) as error:
        tokenizer.encode("a0123456789xyz")
    message = str(error.value)
    assert repr("9") in message and repr("x") not in message and "and 3 more" in message


def test_decode_rejects_ids_outside_vocabulary():
    tokenizer = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 3\)"):
        tokenizer.decode([0, 3])


def test_word_tokenizer_round_trip_and_unknown_words():
    text = "To be, or not to be:  that is\n\nthe question."
    tokenizer = WordTokenizer.train(text)
    ids = tokenizer.encode(text)
    assert ids.dtype == np.int32
    assert tokenizer.decode(ids) == text
    to, space, comma = (tokenizer.vocab.index(token) for token in ("to", " ", ","))
    unknown = tokenizer.encode("to sleep, perchance")
    assert unknown.tolist() == [to, space, 0, comma, space, 0]
    assert tokenizer.decode(unknown) == "to <unk>, <unk>"


def test_word_tokenizer_keeps_most_frequent():
    tokenizer = WordTokenizer.train("a a a b b c", max_vocab_size=3)
    assert tokenizer.vocab == ["<unk>", " ", "a"]
    assert tokenizer.encode("a b").tolist() == [2, 1, 0]


def test_bpe_vocab_size_respected_and_round_trips_any_text():
    tokenizer = BPETokenizer.train(SMALL_TEXT, vocab_size=300)
    assert tokenizer.vocab_size == 300
    ids = tokenizer.encode(SMALL_TEXT)
    assert len(ids) < len(SMALL_TEXT) / 2  # merges were learned and used
    unseen = "Zebra ü 😀\r\n\t  indented"
    assert tokenizer.decode(tokenizer.encode(unseen)) == unseen
    assert tokenizer.decode(ids) == SMALL_TEXT


def test_bpe_training_is_deterministic(tmp_path):
    BPETokenizer.train(SMALL_TEXT, vocab_size=300).save(tmp_path / "a")
    BPETokenizer.train(SMALL_TEXT, vocab_size=300).save(tmp_path / "b")
    assert (tmp_path / "a" / "tokenizer.json").read_text() == \
        (tmp_path / "b" / "tokenizer.json").read_text()


def test_bpe_rejects_vocab_smaller_than_bytes():
    with pytest.raises(ValueError, match="vocab_size >= 256"):
        BPETokenizer.train(SMALL_TEXT, vocab_size=100)


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_save_and_load_round_trip(kind, tmp_path):
    tokenizer = build_tokenizer(kind, SMALL_TEXT, vocab_size=280)
    path = tokenizer.save(tmp_path / "run")
    assert path == tmp_path / "run" / "tokenizer.json"
    loaded = load_tokenizer(tmp_path / "run")
    assert type(loaded) is type(tokenizer) and loaded.kind == kind
    assert loaded.vocab_size == tokenizer.vocab_size
    np.testing.assert_array_equal(loaded.encode(SMALL_TEXT), tokenizer.encode(SMALL_TEXT))
    assert loaded.decode(loaded.encode(SMALL_TEXT)) == SMALL_TEXT


def test_build_tokenizer_vocab_size_per_kind():
    assert build_tokenizer("char", SMALL_TEXT, vocab_size=10).vocab_size == len(set(SMALL_TEXT))
    assert build_tokenizer("word", SMALL_TEXT, vocab_size=10).vocab_size == 10
    assert build_tokenizer("bpe", SMALL_TEXT, vocab_size=270).vocab_size == 270


def test_build_tokenizer_unknown_kind():
    with pytest.raises(ValueError, match="choose one of bpe, char, word"):
        build_tokenizer("sentencepiece", SMALL_TEXT)


def test_load_tokenizer_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


# ---------------------------------------------------------------- corpora


def test_python_stdlib_is_deterministic_and_substantial():
    text = load_corpus("python_stdlib")
    assert text == python_stdlib_text()
    assert 1_000_000 < len(text) <= corpora.PYTHON_STDLIB_MAX_CHARS
    assert text.startswith("# ==== ") and "\n# ==== abc.py ====\n" in text
    assert "_sysconfigdata" not in text.split("\n", 1)[0]
    assert len(python_stdlib_text(max_chars=1000)) == 1000


def _shared_tiny_shakespeare_dir():
    folder = os.environ.get("SEQJAX_DATA_DIR")
    if not folder or not (Path(folder) / corpora.TINY_SHAKESPEARE_FILE).is_file():
        pytest.skip("Tiny Shakespeare not available: set SEQJAX_DATA_DIR to its folder")
    return folder


def test_tiny_shakespeare_from_data_dir_and_split_sizes():
    folder = _shared_tiny_shakespeare_dir()
    text = load_corpus("tiny_shakespeare")  # through $SEQJAX_DATA_DIR
    assert text == load_corpus("tiny_shakespeare", data_dir=folder)
    assert len(text) == 1_115_394 and len(set(text)) == 65
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == corpora.TINY_SHAKESPEARE_SHA256
    train, val = split_train_val(text)
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert train + val == text


def test_tiny_shakespeare_wrong_existing_file(tmp_path):
    (tmp_path / corpora.TINY_SHAKESPEARE_FILE).write_text("not shakespeare")
    with pytest.raises(CorpusError, match="is not Tiny Shakespeare") as error:
        load_corpus("tiny_shakespeare", data_dir=str(tmp_path))
    assert str(tmp_path / corpora.TINY_SHAKESPEARE_FILE) in str(error.value)


class _FakeResponse(io.BytesIO):
    """A urlopen response serving ``data``; raises after ``fail_after`` bytes if given."""

    def __init__(self, data, fail_after=None):
        super().__init__(data)
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise TimeoutError("connection dropped")
        return super().read(size)


def test_tiny_shakespeare_download_with_fake_opener(tmp_path, monkeypatch):
    payload = ("Speak, speak.\n" * 10_000).encode()
    requests = []

    def fake_urlopen(url, timeout):
        requests.append((url, timeout))
        return _FakeResponse(payload)

    monkeypatch.setattr(corpora, "urlopen", fake_urlopen)
    monkeypatch.setattr(corpora, "TINY_SHAKESPEARE_SHA256", hashlib.sha256(payload).hexdigest())
    folder = tmp_path / "cache"
    assert load_corpus("tiny_shakespeare", data_dir=str(folder)) == payload.decode()
    assert requests == [(corpora.TINY_SHAKESPEARE_URL, corpora.DOWNLOAD_TIMEOUT_S)]
    assert sorted(os.listdir(folder)) == [corpora.TINY_SHAKESPEARE_FILE]
    load_corpus("tiny_shakespeare", data_dir=str(folder))
    assert len(requests) == 1  # cached


def test_download_with_wrong_sha_leaves_no_file(tmp_path):
    destination = tmp_path / "corpus.txt"
    with pytest.raises(CorpusError, match="expected 0000") as error:
        download_verified("https://example.org/x", destination, sha256="0" * 64,
                          opener=lambda url, timeout: _FakeResponse(b"wrong bytes"))
    assert "sha256" in str(error.value) and str(destination) in str(error.value)
    assert os.listdir(tmp_path) == []


def test_interrupted_download_leaves_no_half_file(tmp_path, monkeypatch):
    monkeypatch.setattr(corpora, "urlopen",
                        lambda url, timeout: _FakeResponse(b"x" * 200_000, fail_after=65_536))
    with pytest.raises(CorpusError, match="could not be downloaded"):
        load_corpus("tiny_shakespeare", data_dir=str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_offline_and_not_cached_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise URLError("no network")

    monkeypatch.setattr(corpora, "urlopen", offline)
    monkeypatch.setenv("SEQJAX_DATA_DIR", str(tmp_path))
    with pytest.raises(CorpusError) as error:
        load_corpus("tiny_shakespeare")
    message = str(error.value)
    assert str(tmp_path / corpora.TINY_SHAKESPEARE_FILE) in message
    assert "SEQJAX_DATA_DIR" in message and "no network" in message
    assert os.listdir(tmp_path) == []


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEQJAX_DATA_DIR", raising=False)
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "seqjax"
    monkeypatch.setenv("SEQJAX_DATA_DIR", "../shared/data")
    assert resolve_data_dir() == tmp_path.parent / "shared" / "data"
    assert resolve_data_dir("explicit") == tmp_path / "explicit"


def test_local_file_corpus(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_bytes("line one\r\nlíne two\n".encode("utf-8"))
    assert load_corpus(str(path)) == "line one\r\nlíne two\n"


def test_missing_path_names_path_and_corpus_names(tmp_path):
    with pytest.raises(CorpusError) as error:
        load_corpus(str(tmp_path / "nothere.txt"))
    message = str(error.value)
    assert "nothere.txt" in message and "'tiny_shakespeare'" in message
    assert "'python_stdlib'" in message


def test_empty_and_non_utf8_files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="is empty"):
        load_corpus(str(tmp_path / "empty.txt"))
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        load_corpus(str(tmp_path / "latin1.txt"))


def test_split_train_val():
    assert split_train_val("abcdefghij") == ("abcdefghi", "j")
    assert split_train_val("abcdefghij", train_fraction=0.5) == ("abcde", "fghij")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_train_val("abcdefghij", train_fraction=1.0)
    with pytest.raises(CorpusError, match="too short"):
        split_train_val("a")


# ---------------------------------------------------------------- batching


def test_random_windows_pure_function_of_seed_and_step():
    tokens = np.arange(1000)
    first = random_windows(tokens, batch_size=8, seq_len=16, seed=3, step=5)
    again = random_windows(tokens, batch_size=8, seq_len=16, seed=3, step=5)
    other_step = random_windows(tokens, batch_size=8, seq_len=16, seed=3, step=6)
    other_seed = random_windows(tokens, batch_size=8, seq_len=16, seed=4, step=5)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other_step[0])
    assert not np.array_equal(first[0], other_seed[0])


def test_random_windows_are_shifted_windows_over_all_valid_starts():
    tokens = np.arange(12) * 7
    inputs, targets = random_windows(tokens, batch_size=2000, seq_len=3, seed=0, step=0)
    assert inputs.shape == targets.shape == (2000, 3)
    assert inputs.dtype == targets.dtype == np.int32
    starts = inputs[:, 0] // 7
    np.testing.assert_array_equal(inputs, tokens[starts[:, None] + np.arange(3)])
    np.testing.assert_array_equal(targets, tokens[starts[:, None] + np.arange(1, 4)])
    assert sorted(set(starts.tolist())) == list(range(9))  # 12 - 3 valid starts


def test_random_windows_too_small_corpus():
    with pytest.raises(ValueError, match="too small.*seq_len=5.*smaller seq_len"):
        random_windows(np.arange(5), batch_size=2, seq_len=5, seed=0, step=0)


def test_stream_windows_are_contiguous_across_steps():
    tokens = np.arange(103)
    batch_size, seq_len = 4, 5
    num_windows = num_stream_windows(len(tokens), batch_size, seq_len)
    assert num_windows == 4  # streams of 25 tokens: (25 - 1) // 5
    streams = tokens[:100].reshape(4, 25)
    resets = []
    for step in range(2 * num_windows):
        inputs, targets, reset = stream_windows(tokens, batch_size=batch_size, seq_len=seq_len,
                                                step=step)
        k = step % num_windows
        np.testing.assert_array_equal(inputs, streams[:, 5 * k : 5 * k + 5])
        np.testing.assert_array_equal(targets, streams[:, 5 * k + 1 : 5 * k + 6])
        if not reset:
            np.testing.assert_array_equal(inputs[:, 0], previous_targets[:, -1])
        previous_targets = targets
        resets.append(reset)
    assert resets == [True, False, False, False] * 2


def test_stream_windows_too_small_corpus():
    assert num_stream_windows(24, 4, 5) == 1
    with pytest.raises(ValueError, match="needs batch_size \\* \\(seq_len \\+ 1\\) = 24 tokens"):
        num_stream_windows(23, 4, 5)
    with pytest.raises(ValueError, match="smaller seq_len or batch_size"):
        stream_windows(np.arange(10), batch_size=4, seq_len=5, step=0)


def test_eval_windows_cover_targets_once_in_order():
    tokens = np.arange(28)
    batches = eval_windows(tokens, batch_size=2, seq_len=5)
    assert [inputs.shape for inputs, _ in batches] == [(2, 5), (2, 5), (1, 5)]
    targets = np.concatenate([t.reshape(-1) for _, t in batches])
    np.testing.assert_array_equal(targets, np.arange(1, 26))
    for inputs, batch_targets in batches:
        np.testing.assert_array_equal(batch_targets, inputs + 1)
    assert len(eval_windows(tokens, batch_size=2, seq_len=5, drop_remainder=True)) == 2
    limited = eval_windows(tokens, batch_size=2, seq_len=5, max_batches=1)
    assert len(limited) == 1 and np.array_equal(limited[0][0], batches[0][0])


def test_eval_windows_too_small():
    with pytest.raises(ValueError, match="too small for one evaluation batch"):
        eval_windows(np.arange(5), batch_size=2, seq_len=5)
