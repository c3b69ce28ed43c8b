"""Specification of file corpora: a folder split by file, tokenized once into memory-mapped files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqjax.data import CorpusError, build_tokenizer, file_corpus, folder_corpus, python_stdlib_files
from seqjax.data import token_cache
from seqjax.data.file_corpus import FILE_HEADER, split_coordinate
from seqjax.language_data import prepare_language_data
from tests.training_configs import tiny_config

REPO = Path(__file__).parents[1]


def write_files(folder, count, size=400):
    """``count`` small Python-like files in ``folder`` (two of them in a subfolder)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / ("pkg" if i < 2 else "") / f"module_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        names = [f"name_{j}" for j in rng.integers(0, 20, size // 8)]
        path.write_text("".join(f"{n} = {n} + {i}\n" for n in names))
    return folder


def test_a_folder_corpus_has_its_text_files_and_leaves_out_hidden_and_binary_ones(tmp_path):
    write_files(tmp_path, 4)
    (tmp_path / ".hidden.py").write_text("secret = 1\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\0\0\0binary")
    corpus = folder_corpus(tmp_path)
    assert corpus.files == ("module_2.py", "module_3.py", "pkg/module_0.py", "pkg/module_1.py")
    text = corpus.text_of("pkg/module_0.py")
    assert text.startswith(FILE_HEADER.format(path="pkg/module_0.py"))
    assert text.endswith((tmp_path / "pkg" / "module_0.py").read_text())


def test_the_split_is_by_file_follows_the_hash_rule_and_is_stable_when_files_come_and_go(tmp_path):
    corpus = folder_corpus(write_files(tmp_path, 60))
    train, val = corpus.split(0.2)
    assert set(train) | set(val) == set(corpus.files) and not set(train) & set(val)
    assert set(val) == {f for f in corpus.files if split_coordinate(f) < 0.2}
    for name in ("module_10.py", "module_11.py"):  # others leave: no file changes sides
        (tmp_path / name).unlink()
    smaller_train, smaller_val = folder_corpus(tmp_path).split(0.2)
    assert set(smaller_val) == set(val) - {"module_10.py", "module_11.py"}
    assert set(smaller_train) == set(train) - {"module_10.py", "module_11.py"}


def test_both_sides_of_a_split_hold_a_file_and_one_file_is_an_error(tmp_path):
    corpus = folder_corpus(write_files(tmp_path, 4))
    for fraction in (0.001, 0.999):
        train, val = corpus.split(fraction)
        assert len(train) >= 1 and len(val) >= 1 and len(train) + len(val) == 4
    (tmp_path / "pkg" / "module_0.py").unlink()
    (tmp_path / "pkg" / "module_1.py").unlink()
    (tmp_path / "module_2.py").unlink()
    with pytest.raises(CorpusError, match="a split by file needs at least 2"):
        folder_corpus(tmp_path).split()
    with pytest.raises(CorpusError, match="no corpus folder"):
        folder_corpus(tmp_path / "missing")
    (tmp_path / "module_3.py").unlink()
    with pytest.raises(CorpusError, match="holds no text file"):
        folder_corpus(tmp_path)


def test_the_python_stdlib_corpus_includes_tests_and_leaves_out_site_packages():
    corpus = python_stdlib_files()
    assert file_corpus("python_stdlib_full").files == corpus.files
    assert any(f.startswith("test/") for f in corpus.files) and "os.py" in corpus.files
    assert not any("site-packages" in f or f.startswith("_sysconfigdata") for f in corpus.files)
    assert file_corpus("python_stdlib") is None and file_corpus("no/such/file.txt") is None


def test_token_files_are_the_files_encoded_one_after_another(tmp_path):
    corpus = folder_corpus(write_files(tmp_path / "corpus", 12))
    splits = corpus.split()
    tokenizer = token_cache.cached_tokenizer(corpus, splits[0], "bpe", 300, cache_dir=tmp_path / "c")
    train, val = token_cache.cached_token_splits(corpus, splits, tokenizer, cache_dir=tmp_path / "c")
    assert isinstance(train, np.memmap) and train.dtype == np.uint16
    for tokens, files in zip((train, val), splits):
        expected = np.concatenate([tokenizer.encode(corpus.text_of(f)) for f in files])
        np.testing.assert_array_equal(tokens, expected)


def test_a_second_run_reads_the_cache_and_tokenizes_nothing(tmp_path, monkeypatch):
    corpus = folder_corpus(write_files(tmp_path / "corpus", 8))
    splits = corpus.split()
    cache = tmp_path / "cache"
    tokenizer = token_cache.cached_tokenizer(corpus, splits[0], "word", 50, cache_dir=cache)
    first = token_cache.cached_token_splits(corpus, splits, tokenizer, cache_dir=cache)

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(token_cache, "build_tokenizer", no_tokenizing)
    monkeypatch.setattr(token_cache, "write_token_file", no_tokenizing)
    again = token_cache.cached_tokenizer(corpus, splits[0], "word", 50, cache_dir=cache)
    assert again.vocab == tokenizer.vocab
    for before, after in zip(first, token_cache.cached_token_splits(corpus, splits, again,
                                                                     cache_dir=cache)):
        np.testing.assert_array_equal(before, after)


def test_a_changed_file_or_another_tokenizer_gets_its_own_token_files(tmp_path):
    folder = write_files(tmp_path / "corpus", 8)
    cache = tmp_path / "cache"
    corpus = folder_corpus(folder)
    char = build_tokenizer("char", corpus.texts(corpus.files))
    token_cache.cached_token_splits(corpus, corpus.split(), char, cache_dir=cache)
    word = build_tokenizer("word", corpus.texts(corpus.files))
    token_cache.cached_token_splits(corpus, corpus.split(), word, cache_dir=cache)
    path = folder / "module_5.py"
    path.write_text(path.read_text() + "name_1 = name_2\n")
    os.utime(path, ns=(1, 1))  # a new modification time
    token_cache.cached_token_splits(folder_corpus(folder), corpus.split(), char, cache_dir=cache)
    assert len(list((cache / "tokens").iterdir())) == 3


def test_damaged_token_files_are_rebuilt(tmp_path):
    corpus = folder_corpus(write_files(tmp_path / "corpus", 8))
    cache = tmp_path / "cache"
    tokenizer = build_tokenizer("char", corpus.texts(corpus.files))
    train, _ = token_cache.cached_token_splits(corpus, corpus.split(), tokenizer, cache_dir=cache)
    expected = np.array(train)
    (entry,) = (cache / "tokens").iterdir()
    with open(entry / "train.bin", "r+b") as handle:
        handle.truncate(10)
    train, _ = token_cache.cached_token_splits(corpus, corpus.split(), tokenizer, cache_dir=cache)
    np.testing.assert_array_equal(train, expected)


def test_an_unwritable_cache_folder_path_tokenizes_into_memory_with_a_warning(tmp_path):
    corpus = folder_corpus(write_files(tmp_path / "corpus", 8))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    tokenizer = build_tokenizer("char", corpus.texts(corpus.files))
    with pytest.warns(UserWarning, match="tokenizing into memory"):
        train, _ = token_cache.cached_token_splits(corpus, corpus.split(), tokenizer,
                                                   cache_dir=blocker / "cache")
    expected = np.concatenate([tokenizer.encode(corpus.text_of(f)) for f in corpus.split()[0]])
    np.testing.assert_array_equal(train, expected)


def test_language_data_of_a_folder_keeps_the_tokenizer_in_the_workdir(tmp_path, monkeypatch):
    folder = write_files(tmp_path / "corpus", 10)
    config = tiny_config(str(folder), **{"data.tokenizer": "bpe", "data.vocab_size": 280})
    data = prepare_language_data(config.data, tmp_path / "run", min_tokens=10)
    saved = json.loads((tmp_path / "run" / "tokenizer.json").read_text())
    assert saved["kind"] == "bpe" and data.tokenizer.vocab_size <= 280
    train_files, _ = folder_corpus(folder).split()
    assert data.tokenizer.decode(data.train_tokens[:200]).startswith(
        FILE_HEADER.format(path=train_files[0]))

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized again")

    # A resume loads the workdir's BPE tokenizer, which must find the same token files.
    monkeypatch.setattr(token_cache, "write_token_file", no_tokenizing)
    resumed = prepare_language_data(config.data, tmp_path / "run", min_tokens=10)
    np.testing.assert_array_equal(resumed.val_tokens, data.val_tokens)


def test_training_from_the_command_line_on_a_folder_and_resuming(tmp_path):
    folder = write_files(tmp_path / "corpus", 10, size=2000)
    command = [sys.executable, "-m", "experiments.train",
               "--config=experiments/configs/quickstart.py", f"--workdir={tmp_path / 'run'}",
               f"--config.data.corpus={folder}", "--config.num_steps=4", "--config.batch_size=2",
               "--config.seq_len=16", "--config.eval_every=2", "--config.log_every=2",
               "--config.checkpoint_every=2", "--config.model.hidden_size=16",
               "--config.sample.num_tokens=5", "--config.sample.prompt=name",
               "--config.progress_bar=false"]
    env = {**os.environ, "SEQJAX_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    (entry,) = (tmp_path / "cache" / "tokens").iterdir()
    written = (entry / "train.bin").stat().st_mtime_ns
    again = subprocess.run(command + ["--config.num_steps=6"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (entry / "train.bin").stat().st_mtime_ns == written  # read, not written again
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert steps[-1] == 6
