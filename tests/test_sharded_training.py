"""Sharded training is single-device training: on 4 simulated CPU devices and on 2 processes.

Sharded runs sum the gradients and the losses in another order than one device does, so they
agree to float32 reduction-order tolerance, not bit for bit: over these 12-step runs the logged
losses and metrics agree to ``rtol = 1e-5`` (measured: 3.1e-7 at most) and the final parameters
to ``atol = 2e-5, rtol = 1e-4`` (measured: 1.1e-5 at most, in parameters that stay near 0, where
AdamW turns a gradient of rounding noise into a step of the learning rate's size). The sharded runs go through ``JAX_NUM_CPU_DEVICES=4`` in a
subprocess; the 2-process runs through ``jax.distributed`` on localhost, by the command line.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from seqjax.errors import ConfigError
from seqjax.training import distributed, read_metrics, train_and_evaluate
from seqjax.training.checkpoints import RunCheckpoints
from seqjax.training.config_checks import check_mesh
from seqjax.training.distributed import settings_from
from seqjax.training.language_modeling import LanguageModeling
from seqjax.training.loop import start_state, training_task_type
from seqjax.training.optimizer import make_optimizer
from seqjax.training.sharding import DEFAULT_MESH, make_mesh, mesh_shape, parameter_spec
from tests.training_configs import sharding_config, write_corpus

REPO = Path(__file__).resolve().parents[1]
# Every config on every mesh (data, fsdp) of 4 devices; lstm_2_2 resumes a 1-device run.
SHARDED = [f"{name}_{mesh}" for name in ("lstm", "transformer", "task")
           for mesh in ("4_1", "2_2", "1_4") if f"{name}_{mesh}" != "lstm_2_2"] + ["min_gru_4_1"]


def config_and_mesh(run_name):
    """``"min_gru_4_1"`` -> ``("min_gru", "4,1")``."""
    name, data, fsdp = run_name.rsplit("_", 2)
    return name, f"{data},{fsdp}"


class Interrupted(Exception):
    pass


def run_until_interrupted(config, workdir, step_to_fail):
    """Train on this process's one device until the loop asks for batch ``step_to_fail``."""
    real = LanguageModeling.training_batch

    def batch_or_fail(self, step, rows):
        if step == step_to_fail:
            raise Interrupted
        return real(self, step, rows)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LanguageModeling, "training_batch", batch_or_fail)
        with pytest.raises(Interrupted):
            train_and_evaluate(config, workdir)


def subprocess_env(num_devices):
    """This environment (with conftest's compilation cache) on ``num_devices`` CPU devices."""
    return dict(os.environ, JAX_NUM_CPU_DEVICES=str(num_devices), JAX_PLATFORMS="cpu",
                PYTHONPATH=str(REPO))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-device references (here), then the 4-device runs (one subprocess). ``lstm_2_2``
    starts as a one-device run interrupted at step 8 and is finished on 4 devices."""
    root = tmp_path_factory.mktemp("sharded")
    corpus = write_corpus(root)
    for name in ("lstm", "transformer", "task", "min_gru"):
        train_and_evaluate(sharding_config(name, corpus), root / f"{name}_1")
    run_until_interrupted(sharding_config("lstm", corpus), root / "lstm_2_2", 7)
    assert read_metrics(root / "lstm_2_2")[-1]["step"] == 7  # the checkpoint is at 6
    command = [sys.executable, "-m", "tests.train_on_mesh", corpus, str(root), "--run=lstm:2,2",
               "--collectives=lstm:4,1"]
    command += ["--run={}:{}".format(*config_and_mesh(name)) for name in SHARDED]
    subprocess.run(command, cwd=REPO, env=subprocess_env(4), check=True, timeout=600,
                   capture_output=True)
    return root, corpus


def assert_same_metrics(records, reference):
    assert [r["step"] for r in records] == [r["step"] for r in reference]
    for record, expected in zip(records, reference):
        assert record.keys() == expected.keys()
        np.testing.assert_allclose([record[k] for k in expected], list(expected.values()),
                                   rtol=1e-5, atol=1e-7)


def final_params(workdir, config):
    """The latest checkpoint's params, restored onto this process's one device."""
    training = training_task_type(config)(config, workdir)
    optimizer, _ = make_optimizer(config.optim, config.num_steps)
    fresh, _ = start_state(training, optimizer, config, make_mesh(DEFAULT_MESH))
    with RunCheckpoints(Path(workdir) / "checkpoints") as checkpoints:  # a reader: changes nothing
        state, _ = checkpoints.restore_latest(fresh)
    return state.params


@pytest.fixture(scope="module")
def reference_params(runs):
    """``reference_params(config name)``: its one-device run's final params, restored once for
    the meshes that compare with them."""
    root, corpus = runs
    restored = {}

    def params(name):
        if name not in restored:
            restored[name] = final_params(root / f"{name}_1", sharding_config(name, corpus))
        return restored[name]

    return params


@pytest.mark.parametrize("name", SHARDED)
def test_sharded_run_matches_the_single_device_run(runs, reference_params, name):
    root, corpus = runs
    config = sharding_config(config_and_mesh(name)[0], corpus)
    reference = root / f"{config_and_mesh(name)[0]}_1"
    assert_same_metrics(read_metrics(root / name), read_metrics(reference))
    jax.tree.map(assert_close, final_params(root / name, config),
                 reference_params(config_and_mesh(name)[0]))


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-5)


def test_one_device_checkpoint_resumes_on_four_devices(runs):
    root, _ = runs
    assert_same_metrics(read_metrics(root / "lstm_2_2"), read_metrics(root / "lstm_1"))


def test_fused_recurrence_all_reduces_its_gradients_once_per_step(runs):
    """Data parallel over 4 devices, the LSTM's chunked BPTT sums each device's weight
    gradients locally: no all-reduce inside a loop (one per gradient chunk), one after it."""
    root, _ = runs
    counts = json.loads((root / "collectives.json").read_text())
    assert counts["in_loops"] == 0 and counts["total"] >= 1, counts


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch_two_processes(config_file, workdir, kill_process_1_at=None, signal_name=None):
    """Both processes of a 2 x 2-device run of ``experiments.train``; process 1 can be made to
    SIGKILL itself (or send itself ``signal_name="SIGTERM"``) when it reaches a step."""
    port = free_port()
    processes = []
    for process_id in range(2):
        entry = ["-m", "experiments.train"]
        if process_id == 1 and kill_process_1_at is not None:
            entry = ["-m", "tests.kill_at_step", str(kill_process_1_at),
                     *([signal_name] if signal_name else [])]
        command = [sys.executable, *entry, f"--config={config_file}", f"--workdir={workdir}",
                   "--config.mesh.data=2", "--config.mesh.fsdp=2", "--compilation_cache=",
                   f"--coordinator_address=localhost:{port}", "--num_processes=2",
                   f"--process_id={process_id}", "--heartbeat_timeout=5"]
        processes.append(subprocess.Popen(command, cwd=REPO, env=subprocess_env(2),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def test_two_processes_survive_a_kill_and_resume_anywhere(runs, tmp_path):
    root, corpus = runs
    config_file = tmp_path / "config.py"
    config_file.write_text("from tests.training_configs import sharding_config\n\n\n"
                           f"def get_config():\n    return sharding_config('lstm', {corpus!r})\n")
    workdir = tmp_path / "run"
    reference = read_metrics(root / "lstm_1")

    survivor, killed = launch_two_processes(config_file, workdir, kill_process_1_at=7)
    killed.wait(timeout=300)
    died = time.monotonic()
    _, errors = survivor.communicate(timeout=120)
    waited = time.monotonic() - died
    assert killed.returncode == -9 and survivor.returncode != 0
    assert "another task died" in errors and waited < 30, (waited, errors[-2000:])
    assert_same_metrics(read_metrics(workdir), reference[: len(read_metrics(workdir))])

    copy = tmp_path / "copied"  # the 2-process checkpoint (step 6), copied, on one device
    shutil.copytree(workdir, copy)
    train_and_evaluate(sharding_config("lstm", corpus), copy)
    assert_same_metrics(read_metrics(copy), reference)

    processes = launch_two_processes(config_file, workdir)  # the same command resumes
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][1][-2000:]
    assert "finished:" in outputs[0][0] and "sample it with" in outputs[0][0]
    assert "devices: cpu, 4 x cpu (2 processes, 2 here)" in outputs[0][0]
    assert "devices:" not in outputs[1][0]  # process 0 speaks for the run
    assert_same_metrics(read_metrics(workdir), reference)


def test_sigterm_to_one_process_stops_both_at_one_step_that_resumes(runs, tmp_path):
    """JAX's preemption sync point: process 1 gets SIGTERM at step 5, both processes save the
    same later step and exit 143, and the same command resumes to the one-device metrics."""
    root, corpus = runs
    config_file = tmp_path / "config.py"
    config_file.write_text("from tests.training_configs import sharding_config\n\n\n"
                           "def get_config():\n"
                           f"    config = sharding_config('lstm', {corpus!r})\n"
                           "    config.num_steps = 48\n    return config\n")
    reference_config = sharding_config("lstm", corpus)
    reference_config.num_steps = 48
    train_and_evaluate(reference_config, tmp_path / "reference")
    workdir = tmp_path / "run"

    processes = launch_two_processes(config_file, workdir, kill_process_1_at=5,
                                     signal_name="SIGTERM")
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [143, 143], outputs[1][1][-2000:]
    assert "stopped by SIGTERM after step" in outputs[0][1] and "Traceback" not in outputs[0][1]
    saved = {int(p.name) for p in (workdir / "checkpoints" / "latest").iterdir()
             if p.name.isdigit()}
    assert 5 < max(saved) < 48, saved

    processes = launch_two_processes(config_file, workdir)
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][1][-2000:]
    assert_same_metrics(read_metrics(workdir), read_metrics(tmp_path / "reference"))


@pytest.mark.parametrize("data, fsdp, num_devices, expected", [
    (-1, 1, 8, (8, 1)), (2, -1, 8, (2, 4)), (1, -1, 1, (1, 1)), (4, 2, 8, (4, 2)),
])
def test_mesh_sizes_fill_the_devices(data, fsdp, num_devices, expected):
    assert mesh_shape({"data": data, "fsdp": fsdp}, num_devices) == expected


@pytest.mark.parametrize("data, fsdp, message", [
    (-1, -1, "only one of"), (3, -1, "divides it"), (2, 2, "must use all 8 devices"),
    (0, 1, "positive or -1"),
])
def test_bad_mesh_sizes_name_the_fix(data, fsdp, message):
    with pytest.raises(ConfigError, match=message):
        mesh_shape({"data": data, "fsdp": fsdp}, 8)


def test_fsdp_shards_the_largest_divisible_axis_of_large_arrays():
    assert parameter_spec((64, 16), 4, min_size=0) == PartitionSpec("fsdp")
    assert parameter_spec((30, 8), 4, min_size=0) == PartitionSpec(None, "fsdp")
    assert parameter_spec((30, 7), 4, min_size=0) == PartitionSpec()  # nothing divides
    assert parameter_spec((64, 16), 4, min_size=2**14) == PartitionSpec()  # small: replicated
    assert parameter_spec((64, 16), 1, min_size=0) == PartitionSpec()  # no fsdp axis
    assert parameter_spec((), 4, min_size=0) == PartitionSpec()


def test_batch_must_split_over_the_mesh(tmp_path):
    config = sharding_config("lstm", write_corpus(tmp_path))
    config.batch_size = 6
    with pytest.raises(ConfigError, match=r"batch_size \(6\) must be a multiple of the 4 devices"):
        check_mesh(config, 4)


def test_distributed_settings_come_from_flags_or_the_environment(monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "host0:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
    assert settings_from(process_id=2) == {
        "coordinator_address": "host0:1234", "num_processes": 4, "process_id": 2}
    with pytest.raises(ConfigError, match="missing: process_id"):
        distributed.initialize()
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
    monkeypatch.delenv("JAX_NUM_PROCESSES")
    for name in distributed.TASK_COUNTS:
        monkeypatch.setenv(name, "1")
    assert distributed.initialize() is False  # nothing given: a single-process run
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert distributed.started_as_one_of_several_tasks()
