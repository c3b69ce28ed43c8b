"""The command-line tools: each bad input gives one clear line and a non-zero exit; a run killed
with SIGKILL and rerun ends with the metrics of an uninterrupted run."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from experiments.jemalloc import library_to_preload
from seqjax.training.metrics_log import read_metrics
from tests.training_configs import damage_checkpoint, write_corpus

REPO = Path(__file__).resolve().parents[1]
CONFIG_TEMPLATE = """
from tests.training_configs import tiny_config


def get_config():
    return tiny_config({corpus!r}, "lstm", num_steps={num_steps}, checkpoint_every={checkpoint_every})
"""


# A run with its own compilation cache: not the test session's (JAX_COMPILATION_CACHE_DIR would
# win over --compilation_cache), every program stored however fast it compiled, cache hits logged.
OWN_CACHE_ENV = {"JAX_COMPILATION_CACHE_DIR": None, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                 "JAX_LOG_COMPILES": "1"}


def run_cli(*args, check_ok=False, env_changes=None):
    """``python -m ARGS`` on the CPU; ``env_changes`` sets variables (None: removes them)."""
    env = os.environ | {"JAX_PLATFORMS": "cpu"}
    for name, value in (env_changes or {}).items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    if check_ok:
        assert result.returncode == 0, result.stderr
    return result


def write_config(folder, corpus, num_steps=12, checkpoint_every=4):
    path = folder / "tiny_config.py"
    path.write_text(CONFIG_TEMPLATE.format(corpus=corpus, num_steps=num_steps,
                                           checkpoint_every=checkpoint_every))
    return str(path)


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in lines if ": error: " in line]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run shared by the sampling tests; the train command ends by printing a sample."""
    folder = tmp_path_factory.mktemp("trained")
    config = write_config(folder, write_corpus(folder), num_steps=8)
    result = run_cli("experiments.train", f"--config={config}", f"--workdir={folder / 'run'}",
                     f"--compilation_cache={folder / 'compilation'}", check_ok=True,
                     env_changes=OWN_CACHE_ENV)
    assert "--- sample (best checkpoint, step 8) ---" in result.stdout
    assert result.stdout.splitlines()[:2] == ["devices: cpu, 1 x cpu (1 process)",
                                              f"malloc: {expected_malloc()}"], result.stdout
    return folder


def expected_malloc():
    """What ``experiments.train`` runs under here: jemalloc where it restarts under it."""
    preloaded = "jemalloc" in os.environ.get("LD_PRELOAD", "")
    return "jemalloc" if preloaded or library_to_preload(os.environ) else "system"


def test_unknown_config_key(tmp_path):
    result = run_cli("experiments.train", "--config=experiments/configs/quickstart.py",
                     f"--workdir={tmp_path}", "--config.model.hiden_size=4")
    assert_one_line_error(result, "no key 'hiden_size'", "--config.model.hiden_size=4", "hidden_size")


def test_wrong_config_type(tmp_path):
    result = run_cli("experiments.train", "--config=experiments/configs/quickstart.py",
                     f"--workdir={tmp_path}", "--config.batch_size=abc")
    assert_one_line_error(result, "--config.batch_size=abc")


def test_malloc_that_is_not_a_file(tmp_path):
    result = run_cli("experiments.train", "--config=experiments/configs/quickstart.py",
                     f"--workdir={tmp_path}",
                     env_changes={"SEQJAX_MALLOC": str(tmp_path / "no.so")})
    assert_one_line_error(result, "SEQJAX_MALLOC=", "'system'")


def test_missing_config_file(tmp_path):
    result = run_cli("experiments.train", "--config=experiments/configs/no_such.py", f"--workdir={tmp_path}")
    assert_one_line_error(result, "no_such.py")


def test_missing_and_empty_corpus(tmp_path):
    missing = run_cli("experiments.train", "--config=experiments/configs/quickstart.py",
                      f"--workdir={tmp_path / 'a'}", f"--config.data.corpus={tmp_path / 'nope.txt'}")
    assert_one_line_error(missing, "nope.txt", "tiny_shakespeare")
    (tmp_path / "empty.txt").write_text("")
    empty = run_cli("experiments.train", "--config=experiments/configs/quickstart.py",
                    f"--workdir={tmp_path / 'b'}", f"--config.data.corpus={tmp_path / 'empty.txt'}")
    assert_one_line_error(empty, "empty")


def test_out_of_vocabulary_prompt(trained_run):
    result = run_cli("experiments.sample", f"--workdir={trained_run / 'run'}", "--prompt=the Zebra ü")
    assert_one_line_error(result, "'Z'", "'ü'", "vocabulary")


def test_sample_from_a_workdir_without_a_run(tmp_path):
    assert_one_line_error(run_cli("experiments.sample", f"--workdir={tmp_path}"), "no training run")


def test_sample_prints_the_continuation(trained_run):
    result = run_cli("experiments.sample", f"--workdir={trained_run / 'run'}", "--prompt=the ",
                     "--num_tokens=12", "--temperature=0.7", "--top_k=5", "--top_p=0.9", check_ok=True)
    assert result.stdout.startswith("the ") and len(result.stdout.rstrip("\n")) >= 4


def test_sample_beam_search_prints_the_continuation_and_its_log_probability(trained_run):
    result = run_cli("experiments.sample", f"--workdir={trained_run / 'run'}", "--prompt=the ",
                     "--num_tokens=10", "--beam_size=3", check_ok=True)
    assert result.stdout.startswith("the ") and len(result.stdout.rstrip("\n")) >= 4
    assert "log-probability of the continuation: -" in result.stderr


def test_sample_refuses_sampling_flags_beside_beam_search(trained_run):
    result = run_cli("experiments.sample", f"--workdir={trained_run / 'run'}", "--beam_size=3",
                     "--temperature=0.5", "--top_k=4")
    assert_one_line_error(result, "--temperature --top_k would be ignored", "remove --beam_size")


def test_sample_names_an_out_of_range_sampling_option(trained_run):
    result = run_cli("experiments.sample", f"--workdir={trained_run / 'run'}", "--top_p=0")
    assert_one_line_error(result, "top_p must be in (0, 1]")


def test_train_stores_its_compiled_programs(trained_run):
    assert any((trained_run / "compilation").iterdir())


def test_compilation_cache_is_filled_then_reused(trained_run, tmp_path):
    """``--compilation_cache`` stores the compiled programs; a rerun loads them."""
    cache = tmp_path / "compilation"
    args = ("experiments.sample", f"--workdir={trained_run / 'run'}", "--prompt=the ",
            "--num_tokens=8", "--temperature=0.7", f"--compilation_cache={cache}")
    first = run_cli(*args, check_ok=True, env_changes=OWN_CACHE_ENV)
    entries = sorted(path.name for path in cache.iterdir())
    assert entries and "compilation cache hit" not in first.stderr
    second = run_cli(*args, check_ok=True, env_changes=OWN_CACHE_ENV)
    assert "Persistent compilation cache hit" in second.stderr
    assert second.stdout == first.stdout
    assert sorted(path.name for path in cache.iterdir()) == entries  # nothing compiled afresh


@pytest.fixture
def jax_without_cache_dir():
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    yield
    jax.config.update("jax_compilation_cache_dir", before)


def test_compilation_cache_folder_choice(jax_without_cache_dir, tmp_path):
    from experiments.compilation_cache import enable_compilation_cache

    assert enable_compilation_cache("") is None  # turned off
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    assert enable_compilation_cache(str(blocked / "cache")) is None  # cannot be created: no cache
    assert jax.config.jax_compilation_cache_dir is None
    folder = tmp_path / "cache"
    assert enable_compilation_cache(str(folder)) == str(folder) and folder.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(folder)
    # a folder JAX already has (JAX_COMPILATION_CACHE_DIR) wins
    assert enable_compilation_cache(str(tmp_path / "other")) == str(folder)
    assert not (tmp_path / "other").exists()


def test_compilation_cache_stores_programs_that_compiled_a_fifth_of_a_second(
        jax_without_cache_dir, tmp_path, monkeypatch):
    from experiments.compilation_cache import MIN_COMPILE_SECONDS, enable_compilation_cache

    name = "jax_persistent_cache_min_compile_time_secs"
    tests_setting = getattr(jax.config, name)
    try:
        monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
        enable_compilation_cache(str(tmp_path / "cache"))
        assert getattr(jax.config, name) == MIN_COMPILE_SECONDS == 0.2
        monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "3")  # the user's stays
        jax.config.update(name, 3.0)
        enable_compilation_cache(str(tmp_path / "cache"))
        assert getattr(jax.config, name) == 3.0
    finally:
        jax.config.update(name, tests_setting)


def test_workdir_of_a_different_model(trained_run):
    result = run_cli("experiments.train", f"--config={trained_run / 'tiny_config.py'}",
                     f"--workdir={trained_run / 'run'}", "--config.model.hidden_size=32")
    assert_one_line_error(result, "hidden_size", "fresh --workdir")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """``(config, metrics)``: a 24-step run checkpointed every 8 steps, never interrupted."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    config = write_config(folder, write_corpus(folder), num_steps=24, checkpoint_every=8)
    run_cli("experiments.train", f"--config={config}", f"--workdir={folder / 'run'}", check_ok=True)
    return config, read_metrics(folder / "run")


def test_sigkill_then_rerun_equals_uninterrupted_run(uninterrupted, tmp_path):
    config, metrics = uninterrupted
    workdir = tmp_path / "killed"  # SIGKILL when the run asks for batch 13: checkpoint at 8
    killed = run_cli("tests.kill_at_step", "13", f"--config={config}", f"--workdir={workdir}")
    assert killed.returncode == -signal.SIGKILL
    assert read_metrics(workdir)[-1]["step"] == 13

    run_cli("experiments.train", f"--config={config}", f"--workdir={workdir}", check_ok=True)
    assert read_metrics(workdir) == metrics


def test_sigterm_saves_the_current_step_and_the_rerun_equals_uninterrupted_run(uninterrupted, tmp_path):
    config, metrics = uninterrupted
    workdir = tmp_path / "preempted"  # SIGTERM when the run asks for batch 13, during step 13
    preempted = run_cli("tests.kill_at_step", "13", "SIGTERM", f"--config={config}",
                        f"--workdir={workdir}")
    assert preempted.returncode == 143
    assert_one_line_error(preempted, "stopped by SIGTERM after step 14", "rerun the same command")
    saved = [int(p.name) for p in (workdir / "checkpoints" / "latest").iterdir() if p.name.isdigit()]
    assert max(saved) == 14  # the step it was running when the signal came: nothing lost

    run_cli("experiments.train", f"--config={config}", f"--workdir={workdir}", check_ok=True)
    assert read_metrics(workdir) == metrics


def test_workdir_that_is_a_file(tmp_path):
    (tmp_path / "run").write_text("notes")
    result = run_cli("experiments.train", "--config=experiments/configs/quickstart.py",
                     f"--workdir={tmp_path / 'run'}")
    assert_one_line_error(result, "is a file, not a folder")
    assert (tmp_path / "run").read_text() == "notes"


def test_unreadable_best_checkpoint_names_the_latest(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run / "run", copy)
    best = copy / "checkpoints" / "best"
    damage_checkpoint(next(best.iterdir()))
    args = ("experiments.sample", f"--workdir={copy}", "--prompt=the ", "--num_tokens=5")
    assert_one_line_error(run_cli(*args), "best checkpoint", "cannot be read", "--checkpoint=latest")
    assert run_cli(*args, "--checkpoint=latest", check_ok=True).stdout.startswith("the ")
