"""Data layer: corpora, tokenizers and batching (all NumPy, on the host)."""

from seqjax.data.batching import (
    eval_windows,
    num_stream_windows,
    random_windows,
    stream_window_block,
    stream_windows,
)
from seqjax.data.corpora import (
    CORPUS_NAMES,
    download_verified,
    load_corpus,
    python_stdlib_text,
    resolve_data_dir,
    split_train_val,
)
from seqjax.data.errors import CorpusError, OutOfVocabularyError
from seqjax.data.file_corpus import FileCorpus, file_corpus, folder_corpus, python_stdlib_files
from seqjax.data.text_corpus import TextCorpus, text_corpus
from seqjax.data.tokenizers import (
    TOKENIZERS,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    build_tokenizer,
    load_tokenizer,
)

__all__ = [
    "BPETokenizer",
    "CORPUS_NAMES",
    "CharTokenizer",
    "CorpusError",
    "FileCorpus",
    "OutOfVocabularyError",
    "TOKENIZERS",
    "TextCorpus",
    "Tokenizer",
    "WordTokenizer",
    "build_tokenizer",
    "download_verified",
    "eval_windows",
    "file_corpus",
    "folder_corpus",
    "load_corpus",
    "load_tokenizer",
    "num_stream_windows",
    "python_stdlib_files",
    "python_stdlib_text",
    "random_windows",
    "resolve_data_dir",
    "split_train_val",
    "stream_window_block",
    "stream_windows",
    "text_corpus",
]
