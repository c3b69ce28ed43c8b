"""A folder of files as a corpus, split into training and validation by file.

A corpus of many documents (source files, books, articles) is split by document, so that no
file straddles the split and the validation loss measures text the model never saw any part
of. Splitting a concatenation at 90% would put the last files whole into validation, and
would cut one file in two.

- :func:`folder_corpus`: every non-hidden text file under a folder (a file whose first 8 KiB
  hold a NUL byte is binary and left out, as git does).
- :func:`python_stdlib_files`: every ``.py`` file of the running interpreter's standard
  library, its tests included (the ``"python_stdlib_full"`` corpus; 1,786 files, 31.5 MB,
  for CPython 3.11.7; ``docs/training.md`` lists other versions).

The split is a pure function of each file's relative path: file ``f`` is in validation iff
``u(f) < val_fraction``, where ``u(f)`` is the first 8 bytes of ``sha256(f)`` read as a
fraction of ``2**64``. Adding or removing other files moves no file across the split. A
file's text enters the token stream as ``"# ==== <relative path> ====\\n" + text``, its bytes
decoded as UTF-8 (invalid bytes become U+FFFD).
"""

import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from seqjax.data.errors import CorpusError

FILE_HEADER = "# ==== {path} ====\n"
BINARY_PROBE_BYTES = 8192
DEFAULT_VAL_FRACTION = 0.1
# Build-specific or joke modules of the standard library (also left out of "python_stdlib").
STDLIB_EXCLUDED_PREFIXES = ("_sysconfigdata", "this.py", "antigravity.py", "__hello__")


@dataclass(frozen=True)
class FileCorpus:
    """A corpus of files under ``root``: ``files`` are sorted relative POSIX paths."""

    name: str
    root: Path
    files: tuple

    def text_of(self, relative_path):
        """One file's contribution to the token stream: its header line, then its text."""
        data = (self.root / relative_path).read_bytes()
        return FILE_HEADER.format(path=relative_path) + data.decode("utf-8", errors="replace")

    def texts(self, files):
        """The texts of ``files`` (relative paths), one at a time and in order."""
        return (self.text_of(f) for f in files)

    def fingerprint(self):
        """sha256 hex of every file's (relative path, size, modification time): changes when a
        file is added, removed or rewritten, without reading the files."""
        digest = hashlib.sha256(str(self.root.resolve()).encode())
        for relative_path in self.files:
            stat = (self.root / relative_path).stat()
            digest.update(f"\0{relative_path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def split(self, val_fraction=DEFAULT_VAL_FRACTION):
        """``(train_files, val_files)``, each sorted; see the module docstring for the rule.

        Both are non-empty: if the rule leaves one side empty, the file of lowest ``u``
        (or highest) moves over. Fewer than 2 files is a :class:`CorpusError`.
        """
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
        if len(self.files) < 2:
            raise CorpusError(f"corpus {self.name!r} has {len(self.files)} file(s); a split by "
                              "file needs at least 2: add files or give a single text file")
        by_u = sorted(self.files, key=split_coordinate)
        num_val = sum(split_coordinate(f) < val_fraction for f in by_u)
        num_val = min(max(num_val, 1), len(by_u) - 1)
        return tuple(sorted(by_u[num_val:])), tuple(sorted(by_u[:num_val]))


def split_coordinate(relative_path):
    """``u(f)`` in ``[0, 1)``: the first 8 bytes of ``sha256(relative_path)`` over ``2**64``."""
    head = hashlib.sha256(relative_path.encode("utf-8")).digest()[:8]
    return int.from_bytes(head, "big") / 2.0**64


def _is_text_file(path):
    with open(path, "rb") as handle:
        return b"\0" not in handle.read(BINARY_PROBE_BYTES)


def folder_corpus(folder):
    """The :class:`FileCorpus` of every non-hidden text file under ``folder``, at any depth.

    Hidden files and folders (a name starting with ``.``), symbolic links and binary files
    are left out. A folder without any text file is a :class:`CorpusError`.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CorpusError(f"no corpus folder at {str(root)!r}: give a folder of text files")
    files = []
    for directory, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in names:
            path = Path(directory) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            if _is_text_file(path):
                files.append(path.relative_to(root).as_posix())
    if not files:
        raise CorpusError(f"corpus folder {str(root)!r} holds no text file: give a folder "
                          "with at least two text files")
    return FileCorpus(str(folder), root, tuple(sorted(files)))


def python_stdlib_files():
    """The ``"python_stdlib_full"`` corpus: every ``*.py`` under ``sysconfig``'s stdlib folder.

    Tests (``test/``), ``idlelib``, ``lib2to3`` and the rest are included; ``site-packages``
    (third-party code) and the build-specific and joke modules of
    ``STDLIB_EXCLUDED_PREFIXES`` are not. Deterministic per Python version.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if "site-packages" in relative.parts or path.name.startswith(STDLIB_EXCLUDED_PREFIXES):
            continue
        if path.is_file():
            files.append(relative.as_posix())
    return FileCorpus("python_stdlib_full", root, tuple(sorted(files)))


FILE_CORPUS_NAMES = {"python_stdlib_full": python_stdlib_files}


def file_corpus(name_or_path):
    """The :class:`FileCorpus` that ``name_or_path`` names (``"python_stdlib_full"`` or a
    folder), or ``None`` when it names a single text (a corpus name or a file)."""
    if name_or_path in FILE_CORPUS_NAMES:
        return FILE_CORPUS_NAMES[name_or_path]()
    if Path(name_or_path).expanduser().is_dir():
        return folder_corpus(name_or_path)
    return None
