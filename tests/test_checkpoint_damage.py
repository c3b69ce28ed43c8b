"""Any file of a checkpoint damaged in any way (cut short, junk, emptied, deleted): training falls
back to the checkpoint before with a warning, sampling and ``load_task_run`` stop with one line
naming the fix, and damage that orbax never notices restores the undamaged values. Never a
traceback, never a good checkpoint set aside; a read error that is not damage is raised as is."""

import asyncio
import errno
import inspect
import json
import shutil
import sys
import warnings
from types import SimpleNamespace

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments.configs.tasks import task_config
from seqjax.errors import CheckpointMismatchError, UnreadableCheckpointError
from seqjax.text_generation import load_run
from seqjax.training import read_metrics, train_and_evaluate
from seqjax.training.checkpoints import (
    DAMAGE, OUTAGE, RunCheckpoints, UnreadableCheckpointWarning, read_failure,
)
from seqjax.training.loop import start_state, training_task_type
from seqjax.training.optimizer import make_optimizer
from seqjax.training.sequence_tasks import load_task_run
from seqjax.training.sharding import DEFAULT_MESH, make_mesh
from tests.test_cli import assert_one_line_error, run_cli
from tests.training_configs import (
    DAMAGE_KINDS, damage_file, orbax_async_read, tiny_config, write_corpus,
)


def files_of(step_folder):
    """Every file of a checkpoint folder (``.../latest/STEP``), relative to it."""
    return sorted(str(p.relative_to(step_folder)) for p in step_folder.rglob("*") if p.is_file())


def same(tree, reference):
    leaves, expected = jax.tree.leaves(tree), jax.tree.leaves(reference)
    return len(leaves) == len(expected) and all(
        np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(leaves, expected))


def damaged_copy(checkpoints, folder, which, relative, kind):
    """A copy of a run's ``checkpoints`` folder in ``folder``, with one file of ``which/8``
    damaged."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(checkpoints, folder)
    damage_file(folder / which / "8" / relative, kind)
    return folder


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """One tiny language-model run (latest checkpoints at steps 4 and 8, best at 8), its train
    state's target and the undamaged values of each checkpoint."""
    folder = tmp_path_factory.mktemp("lm")
    config = tiny_config(write_corpus(folder), "gru", num_steps=8, **{"model.num_layers": 1})
    train_and_evaluate(config, folder / "run")
    mesh = make_mesh(config.get("mesh", DEFAULT_MESH))
    training = training_task_type(config)(config, folder / "run", mesh)
    optimizer, _ = make_optimizer(config.optim, config.num_steps)
    state, _ = start_state(training, optimizer, config, mesh)
    checkpoints = folder / "run" / "checkpoints"
    with RunCheckpoints(checkpoints) as reader:
        latest = reader.restore_latest(state)
    with RunCheckpoints(checkpoints) as reader:
        best = reader.restore_best(state.params)
    with RunCheckpoints(checkpoints) as reader:
        latest_params = reader.restore_best(state.params, "latest")
    before = folder / "before"  # latest/4 alone
    shutil.copytree(checkpoints, before)
    shutil.rmtree(before / "latest" / "8")
    with RunCheckpoints(before) as reader:
        latest_before = reader.restore_latest(state)
    assert (latest[1]["step"], latest_before[1]["step"]) == (8, 4)
    assert best[1]["step"] == 8, best[1]  # the loss fell: best/8 is the one to damage
    return SimpleNamespace(run=folder / "run", checkpoints=checkpoints, state=state,
                           latest=latest, latest_before=latest_before, best=best,
                           latest_params=latest_params)


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_training_falls_back_from_any_damaged_file_of_the_latest_checkpoint(lm, kind, tmp_path):
    """``restore_latest`` as the training run calls it (a writer), for every file of latest/8."""
    noticed = []
    for relative in files_of(lm.checkpoints / "latest" / "8"):
        checkpoints = damaged_copy(lm.checkpoints, tmp_path / "copy", "latest", relative, kind)
        try:
            with warnings.catch_warnings(record=True) as caught, \
                    RunCheckpoints(checkpoints, writer=True) as writer:
                warnings.simplefilter("always")
                state, record = writer.restore_latest(lm.state)
            set_aside = [w for w in caught if w.category is UnreadableCheckpointWarning]
            if record["step"] == 8:  # orbax never read the damaged file: the undamaged values
                assert not set_aside and not (checkpoints / "unreadable").exists()
                assert same(state, lm.latest[0]) and record == lm.latest[1]
            else:  # the checkpoint before, with one warning; only latest/8 moved
                noticed.append(relative)
                assert same(state, lm.latest_before[0]) and record == lm.latest_before[1]
                assert len(set_aside) == 1
                assert "latest/8 cannot be read" in str(set_aside[0].message)
                assert (checkpoints / "unreadable" / "latest-8" / "state").is_dir()
                assert sorted(int(p.name) for p in (checkpoints / "latest").iterdir()) == [4]
        except BaseException as error:
            error.add_note(f"latest/8/{relative} {kind}")
            raise
    assert {"record/metadata", "state/manifest.ocdbt"} <= set(noticed), noticed


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_sampling_a_damaged_best_checkpoint_names_the_latest(lm, kind, tmp_path):
    """``restore_best`` (as ``experiments.sample`` calls it) for every file of best/8; the
    latest checkpoint, which the error line names, still loads."""
    noticed = []
    for relative in files_of(lm.checkpoints / "best" / "8"):
        checkpoints = damaged_copy(lm.checkpoints, tmp_path / "copy", "best", relative, kind)
        try:
            try:
                with RunCheckpoints(checkpoints) as reader:
                    params, record = reader.restore_best(lm.state.params)
            except UnreadableCheckpointError as error:
                noticed.append(relative)
                assert "best checkpoint" in str(error) and "--checkpoint=latest" in str(error)
            else:  # orbax never read the damaged file: the undamaged values
                assert same(params, lm.best[0]) and record == lm.best[1]
            assert not (checkpoints / "unreadable").exists()  # a reader moves nothing
        except BaseException as error:
            error.add_note(f"best/8/{relative} {kind}")
            raise
    assert {"record/metadata", "state/manifest.ocdbt"} <= set(noticed), noticed
    with RunCheckpoints(checkpoints) as reader:
        assert same(reader.restore_best(lm.state.params, "latest")[0], lm.latest_params[0])


def test_sampling_a_damaged_latest_checkpoint_names_the_fix(lm, tmp_path):
    """``restore_best(..., "latest")`` (``--checkpoint=latest``) for every file of latest/8,
    each with one kind of damage in turn."""
    files = files_of(lm.checkpoints / "latest" / "8")
    for index, relative in enumerate(files):
        kind = DAMAGE_KINDS[index % len(DAMAGE_KINDS)]
        checkpoints = damaged_copy(lm.checkpoints, tmp_path / "copy", "latest", relative, kind)
        try:
            try:
                with RunCheckpoints(checkpoints) as reader:
                    params, record = reader.restore_best(lm.state.params, "latest")
            except UnreadableCheckpointError as error:
                assert "latest checkpoint" in str(error)
                assert "rerun the training command" in str(error)
            else:
                assert same(params, lm.latest_params[0]) and record == lm.latest_params[1]
            assert sorted(p.name for p in (checkpoints / "latest").iterdir()) == ["4", "8"]
        except BaseException as error:
            error.add_note(f"latest/8/{relative} {kind}")
            raise


def test_sample_command_says_one_line_for_damaged_json(lm, tmp_path):
    """Junk in a JSON file of the best checkpoint (a UnicodeDecodeError deep in orbax), through
    ``load_run`` and the command line."""
    run = tmp_path / "run"
    shutil.copytree(lm.run, run)
    damage_file(run / "checkpoints/best/8/state/array_metadatas/process_0", "junk")
    with pytest.raises(UnreadableCheckpointError, match="--checkpoint=latest"):
        load_run(run)
    assert same(load_run(run, "latest").params, lm.latest_params[0])
    result = run_cli("experiments.sample", f"--workdir={run}", "--prompt=the ", "--num_tokens=5")
    assert_one_line_error(result, "best checkpoint", "cannot be read", "--checkpoint=latest")
    assert result.returncode == 1


def test_another_model_is_a_mismatch_not_damage(lm, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lm.run, run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["hidden_size"] = 24
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match="does not fit this model"):
        load_run(run)


def failing_restore(error):
    def restore(self, *args, **kwargs):
        raise error
    return restore


def chained(outer, inner):
    try:
        raise inner
    except BaseException as cause:
        try:
            raise outer from cause
        except BaseException as error:
            return error


def data_loss():  # what tensorstore raises for junk (its status code is in the message only)
    return ValueError('DATA_LOSS: Error reading "params.head.kernel/0.0" in OCDBT database')


def io_error():  # tensorstore's EIO: UNKNOWN, with the OS error code as a payload
    return ValueError("UNKNOWN: Error reading local file \"/ckpt/d/ab\": Input/output error "
                      "[os_error_code='5']")


def orbax_read(cause):  # orbax's read of one array wraps whatever ended it
    return chained(Exception("Encountered error while reading array index"), cause)


@pytest.mark.parametrize("error, kind", [
    (data_loss(), DAMAGE),
    (orbax_read(data_loss()), DAMAGE),
    (ValueError("NOT_FOUND: Error reading \"d/ab\" [os_error_code='2']"), DAMAGE),
    (json.JSONDecodeError("Expecting value", "", 0), DAMAGE),
    (UnicodeDecodeError("utf-8", b"\xc9", 0, 1, "invalid continuation byte"), DAMAGE),
    (FileNotFoundError("File _METADATA not found."), DAMAGE),
    (ExceptionGroup("reads", [Exception("read"), data_loss()]), DAMAGE),
    (MemoryError(), OUTAGE),
    (OSError(errno.EIO, "Input/output error"), OUTAGE),
    (orbax_read(io_error()), OUTAGE),
    (ValueError("UNAVAILABLE: Error reading \"d/ab\""), OUTAGE),
    (ValueError("FAILED_PRECONDITION: Error reading [os_error_code='107']"), OUTAGE),
    (ExceptionGroup("reads", [data_loss(), MemoryError()]), OUTAGE),  # any outage wins
    (chained(data_loss(), OSError(errno.ESTALE, "Stale file handle")), OUTAGE),
    (ValueError("pytree structure error"), None),
    (ValueError("the message says DATA_LOSS but is not tensorstore's"), None),
])
def test_read_failures_are_classified_by_type_and_chain(error, kind):
    assert read_failure(error) == kind


@pytest.mark.parametrize("error", [
    MemoryError(), OSError(errno.EIO, "Input/output error"), orbax_read(io_error()),
])
def test_a_read_error_that_is_not_damage_is_raised_and_nothing_is_set_aside(
        lm, tmp_path, monkeypatch, error):
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(lm.checkpoints, checkpoints)
    monkeypatch.setattr(ocp.CheckpointManager, "restore", failing_restore(error))
    with RunCheckpoints(checkpoints, writer=True) as writer, pytest.raises(type(error)) as raised:
        writer.restore_latest(lm.state)
    assert raised.value is error
    assert not (checkpoints / "unreadable").exists()
    assert files_of(checkpoints) == files_of(lm.checkpoints)


def closed_loop_error():
    """What tensorstore's thread meets posting a finished read to orbax's closed event loop."""
    loop = asyncio.new_event_loop()
    loop.close()
    try:
        loop.call_soon_threadsafe(lambda: None)
    except RuntimeError as error:
        return error


def test_abandoned_reads_of_a_failed_restore_print_nothing_whenever_they_are_collected(
        lm, tmp_path, monkeypatch):
    """When one of orbax's parallel reads fails, the others are abandoned, and Python reports
    their ends whenever they come, from orbax's and tensorstore's threads, possibly before the
    restore has raised: the hook that drops them must be in place when the restore starts.
    Another coroutine's unraisable error, or another closed loop's, is still printed."""
    async def not_orbax():
        pass

    closed = closed_loop_error()
    elsewhere = RuntimeError("Event loop is closed")  # raised by other code: kept
    reports = [(orbax_async_read("junk"), orbax_read(data_loss())),
               (None, closed), (not_orbax, orbax_read(data_loss())), (None, elsewhere)]
    reported = []  # this test's reports (an earlier test's real ones may be collected too)

    def report_abandoned_reads_then_fail(self, *args, **kwargs):
        for function, error in reports:
            coroutine = function and function(
                **dict.fromkeys(inspect.signature(function).parameters))
            reported.append(error)
            sys.unraisablehook(SimpleNamespace(  # what Python hands the hook
                object=coroutine, exc_value=error, exc_type=type(error),
                exc_traceback=error.__traceback__, err_msg=None))
            if coroutine is not None:
                coroutine.close()
        raise orbax_read(data_loss())

    printed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: printed.append(
        unraisable.exc_value))
    monkeypatch.setattr(ocp.CheckpointManager, "restore", report_abandoned_reads_then_fail)
    with pytest.raises(UnreadableCheckpointError, match="cannot be read"):
        load_run(shutil.copytree(lm.run, tmp_path / "run"))
    assert [e for e in printed if any(e is r for r in reported)] == [reported[2], elsewhere]


@pytest.fixture(scope="module")
def task_run(tmp_path_factory):
    """A tiny parity run: latest checkpoints at steps 2 and 4, best at 2 or 4."""
    config = task_config("parity", "elman")
    config.task_options.max_length = 6
    config.update(num_steps=4, batch_size=8, eval_examples=16, log_every=1, eval_every=2,
                  checkpoint_every=2, progress_bar=False)
    config.model.hidden_size = 8
    folder = tmp_path_factory.mktemp("task") / "run"
    train_and_evaluate(config, folder)
    return SimpleNamespace(config=config, folder=folder, params=load_task_run(folder)[3])


def test_load_task_run_with_a_damaged_best_checkpoint_names_the_latest(task_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(task_run.folder, run)
    (best,) = (run / "checkpoints" / "best").iterdir()
    damage_file(best / "commit_success.txt", "deleted")  # never read: the same params
    assert same(load_task_run(run)[3], task_run.params)
    damage_file(best / "state" / "manifest.ocdbt", "junk")
    with pytest.raises(UnreadableCheckpointError,
                       match=r'best checkpoint .*\(load_task_run\(workdir, which="latest"\)\)'):
        load_task_run(run)
    load_task_run(run, which="latest")


def test_training_resumes_from_the_checkpoint_before_a_damaged_one(task_run, tmp_path):
    """Its array metadata deleted, the latest checkpoint was once taken for another model's."""
    run = tmp_path / "run"
    shutil.copytree(task_run.folder, run)
    damage_file(run / "checkpoints" / "latest" / "4" / "state" / "_METADATA", "deleted")
    with pytest.warns(UnreadableCheckpointWarning, match="latest/4 cannot be read"):
        train_and_evaluate(task_run.config, run)  # resumes at 2, recomputes 3 and 4
    assert read_metrics(run) == read_metrics(task_run.folder)
    assert (run / "checkpoints" / "unreadable" / "latest-4").is_dir()
