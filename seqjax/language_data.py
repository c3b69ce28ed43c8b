"""The token streams of a language-modeling run: corpus -> 90/10 split -> tokenizer -> ids.

The tokenizer is built once (characters of the whole corpus, so the validation split has no
unknown symbols; word and BPE vocabularies from the training split) and saved in the workdir;
a resumed run and the sampling command load it from there.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqjax.data import build_tokenizer, load_corpus, load_tokenizer, split_train_val
from seqjax.data.errors import CorpusError


@dataclass(frozen=True)
class LanguageData:
    tokenizer: object
    train_tokens: np.ndarray  # [N_train] int32
    val_tokens: np.ndarray  # [N_val] int32


def prepare_language_data(data_config, workdir, min_tokens):
    """Load the corpus, build or load the workdir's tokenizer, encode both splits."""
    text = load_corpus(data_config.corpus)
    train_text, val_text = split_train_val(text)
    tokenizer_file = Path(workdir) / "tokenizer.json"
    if tokenizer_file.exists():
        tokenizer = load_tokenizer(workdir)
    else:
        source = text if data_config.tokenizer == "char" else train_text
        tokenizer = build_tokenizer(data_config.tokenizer, source, vocab_size=data_config.vocab_size)
        tokenizer.save(workdir)
    data = LanguageData(tokenizer, tokenizer.encode(train_text), tokenizer.encode(val_text))
    for split, tokens in (("training", data.train_tokens), ("validation", data.val_tokens)):
        if len(tokens) < min_tokens:
            raise CorpusError(
                f"corpus {data_config.corpus!r} is too small: its {split} split has {len(tokens)} "
                f"tokens, one batch needs {min_tokens}; use a larger corpus or a smaller "
                "--config.batch_size / --config.seq_len"
            )
    return data
