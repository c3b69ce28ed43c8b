"""The token streams of a language-modeling run: corpus -> split -> tokenizer -> token ids.

Two kinds of corpus, both tokenized once into memory-mapped token files that later runs and
resumes open without reading the text again (:mod:`seqjax.data.token_cache`):

- one text (a named corpus or a text file of any size): split at 90% of its characters and
  read in pieces (:mod:`seqjax.data.text_corpus`);
- a folder of files (a folder path, or ``"python_stdlib_full"``): split by file
  (:mod:`seqjax.data.file_corpus`).

The tokenizer is built once per corpus: a character vocabulary from the whole corpus (so the
validation split has no unknown symbol), word and BPE vocabularies from the training split.

The tokenizer is saved in the workdir; a resumed run and the sampling command load it from there.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqjax.data import load_tokenizer
from seqjax.data.errors import CorpusError
from seqjax.data.file_corpus import file_corpus
from seqjax.data.text_corpus import text_corpus
from seqjax.data.token_cache import cached_token_splits, cached_tokenizer


@dataclass(frozen=True)
class LanguageData:
    tokenizer: object
    train_tokens: np.ndarray  # [N_train] integer ids (a read-only memory map)
    val_tokens: np.ndarray  # [N_val]


def _workdir_tokenizer(workdir, build):
    """The tokenizer saved in ``workdir``, else ``build()``'s, saved there."""
    if (Path(workdir) / "tokenizer.json").exists():
        return load_tokenizer(workdir)
    tokenizer = build()
    tokenizer.save(workdir)
    return tokenizer


def _cached_corpus_data(corpus, data_config, workdir):
    splits = corpus.split()
    tokenizer = _workdir_tokenizer(workdir, lambda: cached_tokenizer(
        corpus, splits[0], data_config.tokenizer, data_config.vocab_size))
    return LanguageData(tokenizer, *cached_token_splits(corpus, splits, tokenizer))


def prepare_language_data(data_config, workdir, min_tokens):
    """Load the corpus, build or load the workdir's tokenizer, encode (or open) both splits."""
    corpus = file_corpus(data_config.corpus) or text_corpus(data_config.corpus)
    data = _cached_corpus_data(corpus, data_config, workdir)
    for split, tokens in (("training", data.train_tokens), ("validation", data.val_tokens)):
        if len(tokens) < min_tokens:
            raise CorpusError(
                f"corpus {data_config.corpus!r} is too small: its {split} split has {len(tokens)} "
                f"tokens, one batch needs {min_tokens}; use a larger corpus or a smaller "
                "--config.batch_size / --config.seq_len"
            )
    return data
