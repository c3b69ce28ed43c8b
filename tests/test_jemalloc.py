"""Which malloc the training command restarts under (experiments/jemalloc.py)."""

import os
import subprocess
import sys

import pytest

from experiments.jemalloc import (KEEP_FREED, LIBRARY, library_to_preload, printed_malloc,
                                  restart_environment, running_malloc)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def folder_with_jemalloc(tmp_path):
    (tmp_path / LIBRARY).write_bytes(b"")
    return tmp_path


def test_default_finds_jemalloc_in_the_searched_folders(tmp_path, folder_with_jemalloc):
    searched = (str(tmp_path / "empty"), str(folder_with_jemalloc))
    assert library_to_preload({}, "linux", searched) == str(folder_with_jemalloc / LIBRARY)
    assert library_to_preload({"SEQJAX_MALLOC": "jemalloc"}, "linux", searched) == str(
        folder_with_jemalloc / LIBRARY)


def test_keeps_the_running_malloc_where_there_is_nothing_to_restart_for(tmp_path,
                                                                        folder_with_jemalloc):
    searched = (str(folder_with_jemalloc),)
    assert library_to_preload({}, "linux", (str(tmp_path / "empty"),)) is None  # none installed
    assert library_to_preload({"SEQJAX_MALLOC": "system"}, "linux", searched) is None
    assert library_to_preload({}, "darwin", searched) is None
    # a process started with a preload (a malloc, a sanitizer, a profiler, or the restart's
    # own) runs as started: no second restart, nothing put ahead of what is preloaded
    for preloaded in ("/opt/libjemalloc.so.2", "libasan.so.8", "a.so:b.so", " x.so "):
        assert library_to_preload({"LD_PRELOAD": preloaded}, "linux", searched) is None
    named = {"SEQJAX_MALLOC": searched[0] + "/" + LIBRARY}
    assert library_to_preload({**named, "LD_PRELOAD": named["SEQJAX_MALLOC"]}, "linux", ()) is None


def test_a_named_library_is_used_and_a_missing_one_names_the_fix(tmp_path, folder_with_jemalloc,
                                                                 monkeypatch):
    path = str(folder_with_jemalloc / LIBRARY)
    assert library_to_preload({"SEQJAX_MALLOC": path}, "linux", ()) == path
    monkeypatch.chdir(folder_with_jemalloc)  # a relative path is made absolute for the restart
    assert library_to_preload({"SEQJAX_MALLOC": LIBRARY}, "linux", ()) == path
    with pytest.raises(ValueError, match=r"SEQJAX_MALLOC='/no/such.so' is not a file.*'system'"):
        library_to_preload({"SEQJAX_MALLOC": "/no/such.so"}, "linux", ())
    spaced = tmp_path / "a folder"
    spaced.mkdir()
    (spaced / LIBRARY).write_bytes(b"")
    with pytest.raises(ValueError, match="no space or colon"):  # LD_PRELOAD would split it
        library_to_preload({"SEQJAX_MALLOC": str(spaced / LIBRARY)}, "linux", ())


def test_the_restart_keeps_freed_memory_and_the_users_malloc_settings_win():
    assert restart_environment({}, "/lib/libjemalloc.so.2") == {
        "LD_PRELOAD": "/lib/libjemalloc.so.2", "MALLOC_CONF": KEEP_FREED}
    mine = restart_environment({"MALLOC_CONF": "dirty_decay_ms:1000"}, "/l.so")["MALLOC_CONF"]
    assert mine == f"{KEEP_FREED},dirty_decay_ms:1000"  # jemalloc: a later setting wins


@pytest.mark.skipif(library_to_preload({}) is None, reason="no jemalloc on this machine")
def test_restart_keeps_the_arguments_and_preloads_jemalloc(tmp_path):
    """A script that restarts itself: the second process sees jemalloc mapped, the arguments
    and the variables it was started with, and the setting that keeps freed memory."""
    script = tmp_path / "restarts.py"
    script.write_text("import os, sys\n"
                      "from experiments.jemalloc import restart_under_jemalloc, running_malloc\n"
                      "print('started', flush=True)\n"
                      "restart_under_jemalloc('restarts')\n"
                      "print(running_malloc(), sys.argv[1:], os.environ['MARK'],"
                      " os.environ['MALLOC_CONF'])\n")
    chosen = ("LD_PRELOAD", "MALLOC_CONF", "SEQJAX_MALLOC")
    environment = {k: v for k, v in os.environ.items() if k not in chosen}
    environment.update(MARK="kept", PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-X", "utf8", str(script), "a", "--b=c"],
                            env=environment, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [
        "started", "started", f"jemalloc ['a', '--b=c'] kept {KEEP_FREED}"], result.stdout


def test_running_malloc_here():
    preloaded = os.environ.get("LD_PRELOAD", "")
    expected = next((m for m in ("jemalloc", "tcmalloc", "mimalloc") if m in preloaded), "system")
    assert running_malloc() == expected


def test_the_malloc_a_training_command_printed():
    assert printed_malloc("devices: cpu, 1 x cpu (1 process)\nmalloc: jemalloc\n") == "jemalloc"
    assert printed_malloc("malloc: system") == "system"
    assert printed_malloc("devices: cpu\nfinished: step=2") is None
