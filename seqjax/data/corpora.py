"""Text corpora by name or path, and the train/validation split.

Named corpora:

- ``"tiny_shakespeare"``: Karpathy's Tiny Shakespeare (1,115,394 characters), read from
  ``tinyshakespeare.txt`` in the data folder (``data_dir``, else ``$SEQJAX_DATA_DIR``, else
  ``~/.cache/seqjax``), downloaded there once if absent, and checked against its sha256.
- ``"python_stdlib"``: the source of the running Python's standard library (see
  :func:`python_stdlib_text`); needs no network and no file.

Any other name is read as the path of a UTF-8 text file. A name wins over a file of the same name.
Folders of files, and ``"python_stdlib_full"`` (the whole standard library, tests included),
are corpora split by file: :mod:`seqjax.data.file_corpus`.
"""

import hashlib
import os
import sysconfig
import tempfile
from pathlib import Path
from urllib.request import urlopen

from seqjax.data.errors import CorpusError

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_FILE = "tinyshakespeare.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DATA_DIR_VARIABLE = "SEQJAX_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/seqjax"
DOWNLOAD_TIMEOUT_S = 20.0
PYTHON_STDLIB_MAX_CHARS = 3_000_000
PYTHON_STDLIB_EXCLUDED_PREFIXES = ("_sysconfigdata", "this.py", "antigravity.py", "__hello__")
CORPUS_NAMES = ("python_stdlib", "tiny_shakespeare")
TRAIN_FRACTION = 0.9  # a single text: its first 90% of characters train, the rest validate


def resolve_data_dir(data_dir=None):
    """The data folder: ``data_dir``, else ``$SEQJAX_DATA_DIR``, else ``~/.cache/seqjax``.

    Relative paths are taken relative to the current working directory, as usual.
    """
    chosen = data_dir or os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def load_corpus(name_or_path, *, data_dir=None):
    """The full text of a named corpus or of a UTF-8 file at ``name_or_path``.

    Raises :class:`CorpusError` when the corpus cannot be found, fetched or verified, or is empty.
    """
    if name_or_path == "tiny_shakespeare":
        text = _decode(tiny_shakespeare_bytes(resolve_data_dir(data_dir)), name_or_path)
    elif name_or_path == "python_stdlib":
        text = python_stdlib_text()
    else:
        text = _decode(checked_text_file(Path(name_or_path).expanduser()).read_bytes(), name_or_path)
    if not text:
        raise CorpusError(f"corpus {name_or_path!r} is empty: give a text file with content")
    return text


def train_characters(num_chars, train_fraction=TRAIN_FRACTION):
    """How many of a text's ``num_chars`` characters train: ``floor(num_chars * train_fraction)``,
    at least one and fewer than all (else a :class:`CorpusError`)."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction}")
    split = int(num_chars * train_fraction)
    if split == 0 or split == num_chars:
        raise CorpusError(
            f"corpus of {num_chars} characters is too short to split at train_fraction="
            f"{train_fraction}: use a longer corpus"
        )
    return split


def split_train_val(text, train_fraction=TRAIN_FRACTION):
    """``(train_text, val_text)``: the first ``train_fraction`` of the characters and the rest
    (:func:`train_characters`); on Tiny Shakespeare that gives the customary 1,003,854 / 111,540
    characters."""
    split = train_characters(len(text), train_fraction)
    return text[:split], text[split:]


def python_stdlib_text(max_chars=PYTHON_STDLIB_MAX_CHARS):
    """Source text of the running Python's standard library, deterministic per Python version.

    Selection: the ``*.py`` files directly in ``sysconfig.get_paths()["stdlib"]`` (no
    subfolders, so no ``test``, ``idlelib``, ``site-packages``), minus the build-specific
    ``_sysconfigdata*`` and the joke modules ``this``, ``antigravity``, ``__hello__``; sorted
    by file name, each preceded by a header line ``# ==== <file name> ====``, concatenated
    and cut to the first ``max_chars`` characters (3,000,000 by default).
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pieces, total = [], 0
    for path in sorted(stdlib.glob("*.py"), key=lambda p: p.name):
        if path.name.startswith(PYTHON_STDLIB_EXCLUDED_PREFIXES) or not path.is_file():
            continue
        source = path.read_bytes().decode("utf-8", errors="replace")
        pieces.append(f"# ==== {path.name} ====\n{source}")
        total += len(pieces[-1])
        if total >= max_chars:
            break
    return "".join(pieces)[:max_chars]


def download_verified(url, destination, *, sha256, timeout=DOWNLOAD_TIMEOUT_S, opener=None):
    """Download ``url`` to ``destination`` iff its bytes have the given ``sha256``.

    Bytes go to a temporary file in the destination folder that is renamed into place only
    after the checksum matched, so no partial or wrong file is ever left behind. ``opener``
    defaults to :func:`urllib.request.urlopen` (tests pass a fake).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out, (opener or urlopen)(url, timeout=timeout) as response:
            while chunk := response.read(1 << 16):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise CorpusError(
                f"download of {url} has sha256 {digest.hexdigest()}, expected {sha256}; "
                f"nothing was written. Fetch the file by hand and put it at {destination}"
            )
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return destination


def tiny_shakespeare_bytes(folder):
    """Bytes of Tiny Shakespeare from ``folder``, downloading them there first if absent."""
    path = folder / TINY_SHAKESPEARE_FILE
    if not path.is_file():
        try:
            download_verified(TINY_SHAKESPEARE_URL, path, sha256=TINY_SHAKESPEARE_SHA256)
        except OSError as error:  # URLError, timeouts and an unwritable folder are all OSErrors.
            raise CorpusError(
                f"Tiny Shakespeare is not at {path} and could not be downloaded from "
                f"{TINY_SHAKESPEARE_URL} ({error}). Download it by hand and save it as {path}, "
                f"or set {DATA_DIR_VARIABLE} to a folder that holds {TINY_SHAKESPEARE_FILE}"
            ) from error
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != TINY_SHAKESPEARE_SHA256:
        raise CorpusError(
            f"{path} is not Tiny Shakespeare (sha256 {hashlib.sha256(data).hexdigest()}, expected "
            f"{TINY_SHAKESPEARE_SHA256}): delete it to download it again, or replace it with "
            f"{TINY_SHAKESPEARE_URL}"
        )
    return data


def checked_text_file(path):
    """``path``, when it is a file; else a :class:`CorpusError` naming what to give instead."""
    if path.is_dir():
        raise CorpusError(
            f"{str(path)!r} is a folder: read it with seqjax.data.file_corpus.folder_corpus "
            "(a training config's data.corpus takes a folder and splits it by file)")
    if not path.is_file():
        raise CorpusError(
            f"no corpus file at {str(path)!r} (resolved: {path.resolve()}): give the path of a "
            f"UTF-8 text file, a folder of text files, or one of the corpus names "
            f"{', '.join(map(repr, CORPUS_NAMES + ('python_stdlib_full',)))}"
        )
    return path


def _decode(data, name):
    """``data`` decoded as UTF-8 exactly (no newline translation)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"corpus {name!r} is not UTF-8 text ({error}): convert it to UTF-8"
        ) from error
