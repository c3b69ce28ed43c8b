"""The training loop: it learns, it resumes exactly, and it stops cleanly on divergence."""

import asyncio
import collections
import gc
import json
import math
import shutil
import subprocess
import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import seqjax.training.language_modeling as language_modeling
import seqjax.training.loop as loop
from seqjax.errors import (
    CheckpointMismatchError, ConfigError, TrainingDivergedError, UnreadableCheckpointError,
    WorkdirError,
)
from seqjax.text_generation import PromptError, beam_text, continue_text, load_run
from seqjax.training import train_and_evaluate
from seqjax.training.checkpoints import (
    RunCheckpoints,
    UnreadableCheckpointWarning,
    _quiet_abandoned_reads,
)
from seqjax.training.language_modeling import LanguageModeling
from seqjax.training.metrics_log import read_metrics
from seqjax.training.optimizer import make_optimizer
from seqjax.training.sharding import DEFAULT_MESH, make_mesh
from seqjax.training.step import init_train_state, train_step
from seqjax.training.workdir import claim_workdir
from experiments.configs.defaults import transformer_model
from tests.training_configs import damage_checkpoint, orbax_async_read, tiny_config, write_corpus


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """``finished_run(kind, **overrides) -> (config, workdir)``: a finished run of
    ``tiny_config(CORPUS, kind, **overrides)``, trained once per config for the tests that
    compare with it or start from a copy of it (copy it before changing it); ``config`` is a
    fresh copy of its config."""
    folder = tmp_path_factory.mktemp("finished")
    corpus = write_corpus(folder)
    runs = {}

    def finished(kind, **overrides):
        config = tiny_config(corpus, kind, **overrides)
        key = config.to_json()
        if key not in runs:
            runs[key] = folder / f"run_{len(runs)}"
            train_and_evaluate(config, runs[key])
        return tiny_config(corpus, kind, **overrides), runs[key]

    return finished


def copied(workdir, destination):
    shutil.copytree(workdir, destination)
    return destination


@pytest.mark.parametrize("kind", ["elman", "lstm", "gru"])
def test_a_few_steps_lower_the_loss(tmp_path, corpus, kind):
    config = tiny_config(corpus, kind, num_steps=60, eval_every=60, checkpoint_every=60,
                         **{"optim.learning_rate": 2e-2})
    train_and_evaluate(config, tmp_path / "run")
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 61))
    first, last = records[0]["train_loss"], np.mean([r["train_loss"] for r in records[-5:]])
    assert math.isclose(first, math.log(load_run(tmp_path / "run").tokenizer.vocab_size), rel_tol=0.15)
    assert last < 0.7 * first
    assert records[-1]["val_loss"] < 0.8 * first
    assert math.isclose(records[-1]["val_bits"], records[-1]["val_loss"] / math.log(2))


def train_in_float32_and_bfloat16(tmp_path, corpus, model=None, num_steps=40, learning_rate=1e-2):
    """The same run in each compute dtype: ``{dtype: train losses}``; the bfloat16 run's
    checkpoints hold float32 parameters."""
    losses = {}
    for dtype in ("float32", "bfloat16"):
        config = tiny_config(corpus, num_steps=num_steps, eval_every=num_steps,
                             checkpoint_every=num_steps,
                             **{"data.batching": "random", "optim.learning_rate": learning_rate})
        config.model = model or config.model
        config.model.dtype = dtype
        train_and_evaluate(config, tmp_path / dtype)
        losses[dtype] = np.array([r["train_loss"] for r in read_metrics(tmp_path / dtype)])
    for which in ("best", "latest"):
        params = load_run(tmp_path / "bfloat16", which).params
        assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {np.dtype("float32")}
    assert losses["bfloat16"][-5:].mean() < 0.75 * losses["bfloat16"][0]
    assert not np.array_equal(losses["bfloat16"], losses["float32"])  # bfloat16 does round
    return losses


def test_bfloat16_transformer_trains_like_float32_and_samples_any_length(tmp_path, corpus):
    losses = train_in_float32_and_bfloat16(
        tmp_path, corpus, transformer_model(num_layers=2, num_heads=2, width=32, dropout=0.0))
    # bfloat16 rounds every matrix product to 8 mantissa bits: the curves agree to 5%, step
    # by step (measured: at most 1.8%, final losses 1.6040 and 1.6043).
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.05)
    run = load_run(tmp_path / "bfloat16")  # context: seq_len = 16 tokens
    for refill_length in (None, 15):
        assert len(continue_text(run, "the ", 40, refill_length=refill_length)) == 44
    with pytest.raises(PromptError, match="refill_length 16 must be in \\[1, context_length - 1 = 15\\]"):
        continue_text(run, "the ", 40, refill_length=16)
    # Beam search slides the window too; one beam is greedy decoding.
    greedy = continue_text(run, "the ", 40, temperature=0.0)
    assert beam_text(run, "the ", 40, beam_size=1)[0] == greedy
    text, log_prob = beam_text(run, "the ", 40, beam_size=3, refill_length=15)
    assert text.startswith("the ") and len(text) == 44 and log_prob < 0


def test_bfloat16_fused_lstm_trains_like_float32(tmp_path, corpus):
    """The fused BPTT in bfloat16 (products bfloat16; cell state, gradients' sums float32)."""
    losses = train_in_float32_and_bfloat16(tmp_path, corpus, num_steps=60, learning_rate=2e-2)
    # Measured: at most 0.054% apart step by step, final losses 2.29980 and 2.29981.
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.01)
    run = load_run(tmp_path / "bfloat16")
    tokens = jnp.asarray(run.tokenizer.encode("the cat"), jnp.int32)[None, :]
    logits, _ = run.model.apply({"params": run.params}, tokens, run.model.initial_carry(1))
    # The head's bfloat16 product returns its float32 sum, not rounded to 8 mantissa bits.
    assert not np.array_equal(logits, logits.astype(jnp.bfloat16).astype(jnp.float32))


def interrupt_at(monkeypatch, step_to_fail):
    """Make the loop die (like a kill) when it asks for the batch of ``step_to_fail``."""
    real = language_modeling.training_batch

    def batch_or_die(config, tokens, step, rows=slice(None)):
        if step == step_to_fail:
            raise KeyboardInterrupt
        return real(config, tokens, step, rows)

    monkeypatch.setattr(language_modeling, "training_batch", batch_or_die)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="level 1 is asked for on the CPU")
def test_the_state_initialization_compiled_for_speed_has_the_default_bits(tmp_path, corpus,
                                                                          monkeypatch):
    """``start_state`` compiles the state's initialization at XLA's level 1 on the CPU. With the
    tests' lowest optimization level turned off (their XLA_FLAGS stay), it gives the bits of
    XLA's default level (a scratch check on a Zen 4 found the same for every model kind and for
    the shipped configs, with no XLA_FLAGS)."""
    config = tiny_config(corpus, "lstm")
    config.model = transformer_model(num_layers=1, num_heads=2, width=16, dropout=0.1)
    mesh = make_mesh(DEFAULT_MESH)
    training = LanguageModeling(config, tmp_path, mesh)
    optimizer, _ = make_optimizer(config.optim, config.num_steps)
    tests_setting = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        assert loop.init_compiler_options() == {"xla_backend_optimization_level": 1}
        fast, _ = loop.start_state(training, optimizer, config, mesh)
        monkeypatch.setattr(loop, "init_compiler_options", lambda: None)
        default, _ = loop.start_state(training, optimizer, config, mesh)
    finally:
        jax.config.update("jax_disable_most_optimizations", tests_setting)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(default), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batching", ["stream", "random"])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, finished_run, monkeypatch,
                                                           batching):
    config, straight_run = finished_run("lstm", **{"data.batching": batching})

    interrupt_at(monkeypatch, 7)  # dies in update 8: checkpoint at 4, records up to 7 written
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, tmp_path / "resumed")
    assert read_metrics(tmp_path / "resumed")[-1]["step"] == 7
    monkeypatch.undo()
    train_and_evaluate(config, tmp_path / "resumed")

    assert read_metrics(tmp_path / "resumed") == read_metrics(straight_run)
    straight, resumed = load_run(straight_run), load_run(tmp_path / "resumed")
    assert straight.record == resumed.record
    jax.tree.map(np.testing.assert_array_equal, straight.params, resumed.params)


def test_rerunning_a_finished_run_changes_nothing_and_longer_runs_continue(tmp_path, finished_run):
    # Also when the saved config predates keys added since (model.dtype, scan, block).
    config, finished = finished_run("gru")
    copied(finished, tmp_path / "run")
    before = read_metrics(tmp_path / "run")
    assert train_and_evaluate(config, tmp_path / "run") == before[-1]
    assert read_metrics(tmp_path / "run") == before
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    for key in ("dtype", "scan", "block"):  # as runs saved before these keys existed
        del saved["model"][key]
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    config.num_steps = 16
    train_and_evaluate(config, tmp_path / "run")
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == list(range(1, 17))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, finished_run):
    config, finished = finished_run("lstm", num_steps=4)
    copied(finished, tmp_path / "run")
    config.num_steps = 8
    config.optim.learning_rate = float("nan")
    with pytest.raises(TrainingDivergedError, match="step 5.*checkpoint.*intact"):
        train_and_evaluate(config, tmp_path / "run")
    checkpoints = RunCheckpoints(tmp_path / "run" / "checkpoints")
    assert checkpoints.latest.latest_step() == 4
    run = load_run(tmp_path / "run")
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(run.params))


def test_workdir_of_another_model_is_refused(tmp_path, finished_run):
    config, finished = finished_run("lstm", num_steps=4)
    copied(finished, tmp_path / "run")
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    other = tiny_config(config.data.corpus, "lstm", **{"model.hidden_size": 32})
    with pytest.raises(CheckpointMismatchError, match="hidden_size.*16.*32.*fresh --workdir"):
        train_and_evaluate(other, tmp_path / "run")
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before  # nothing lost


def test_config_values_are_checked(tmp_path, corpus):
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        train_and_evaluate(tiny_config(corpus, batch_size=0), tmp_path / "a")
    with pytest.raises(ConfigError, match="model.kind must be one of"):
        train_and_evaluate(tiny_config(corpus, **{"model.kind": "lstmm"}), tmp_path / "b")
    with pytest.raises(ConfigError, match="model.dtype must be one of float32, bfloat16"):
        train_and_evaluate(tiny_config(corpus, **{"model.dtype": "float16"}), tmp_path / "c")


@pytest.mark.parametrize("overrides, message", [
    ({"num_heads": 3}, "model.width \\(32\\) must be a multiple of config.model.num_heads \\(3\\)"),
    ({"num_layers": 0}, "model.num_layers must be a positive integer"),
    ({"positional": "rope"}, "model.positional must be one of learned, sinusoidal, rotary"),
    ({"attention_impl": "flash"}, "model.attention_impl must be one of auto, reference, xla, cudnn"),
    ({"positional": "sinusoidal", "width": 33, "num_heads": 1},
     "sinusoidal positions need an even config.model.width, got 33"),
    ({"positional": "rotary", "num_heads": 32}, "rotary positions need an even head size .*, got 1"),
])
def test_transformer_config_values_are_checked_before_any_work(tmp_path, corpus, overrides,
                                                               message):
    config = tiny_config(corpus)
    config.model = transformer_model(num_layers=2, num_heads=2, width=32)
    config.model.update(overrides)
    with pytest.raises(ConfigError, match=message):
        train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_sampling_carries_state_and_temperature_zero_is_deterministic(tmp_path, corpus):
    train_and_evaluate(tiny_config(corpus, "lstm", num_steps=40, eval_every=20), tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.record["step"] in (20, 40)
    greedy = [continue_text(run, "the ", 20, temperature=0.0, seed=s) for s in (0, 1)]
    assert greedy[0] == greedy[1] and greedy[0].startswith("the ") and len(greedy[0]) == 24
    sampled = [continue_text(run, "the ", 20, temperature=1.5, top_k=5, seed=s) for s in (0, 1)]
    assert sampled[0] != sampled[1]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["kind"] == "lstm"
    with pytest.raises(PromptError, match="refill_length applies to Transformers"):
        continue_text(run, "the ", 20, refill_length=8)
    with pytest.raises(PromptError, match="refill_length applies to Transformers"):
        beam_text(run, "the ", 20, 2, refill_length=8)
    for generate_text in (continue_text, partial(beam_text, beam_size=2)):
        with pytest.raises(PromptError, match="num_tokens is 0: generate at least 1 token"):
            generate_text(run, "the ", 0)
    with pytest.raises(PromptError, match="top_k must be >= 1"):
        continue_text(run, "the ", 5, top_k=0)


def test_beam_text_returns_the_log_probability_of_its_text(tmp_path, corpus):
    """The score ``beam_text`` reports is the model's log-probability of the text it returns,
    recomputed by one forward pass."""
    train_and_evaluate(tiny_config(corpus, "gru", num_steps=20, eval_every=20), tmp_path / "run")
    run = load_run(tmp_path / "run")
    prompt, num_tokens = "the ", 12
    for beam_size in (1, 4):
        text, log_prob = beam_text(run, prompt, num_tokens, beam_size)
        ids = jnp.asarray(run.tokenizer.encode(text), jnp.int32)[None, :]
        logits, _ = run.model.apply({"params": run.params}, ids[:, :-1], run.model.initial_carry(1))
        log_probs = jax.nn.log_softmax(logits[0, len(prompt) - 1:], axis=-1)
        recomputed = log_probs[jnp.arange(num_tokens), ids[0, len(prompt):]].sum()
        np.testing.assert_allclose(log_prob, recomputed, rtol=1e-5)
    with pytest.raises(PromptError, match="beam_size is 0"):
        beam_text(run, prompt, num_tokens, 0)


def test_metrics_line_cut_by_a_kill_is_dropped_on_resume(tmp_path, corpus):
    config = tiny_config(corpus, "elman", num_steps=4)
    train_and_evaluate(config, tmp_path / "cut")
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "train_lo')  # a kill in the middle of a write
    assert read_metrics(tmp_path / "cut")[-1]["step"] == 4
    config.num_steps = 8
    train_and_evaluate(config, tmp_path / "cut")
    # The first 4 steps ran with num_steps=4, so only the record layout is compared here.
    assert [r["step"] for r in read_metrics(tmp_path / "cut")] == list(range(1, 9))


def test_stream_batches_reset_rows_at_new_passes_and_at_random(corpus):
    from seqjax.training.language_modeling import training_batch

    tokens = np.arange(2000, dtype=np.int32)
    config = tiny_config(corpus, **{"data.stream_reset_probability": 0.0})
    assert training_batch(config, tokens, 0)[2].all()  # a new pass over the data
    assert not training_batch(config, tokens, 1)[2].any()
    config.data.stream_reset_probability = 0.5
    resets = np.stack([training_batch(config, tokens, step)[2] for step in range(1, 200)])
    assert 0.4 < resets.mean() < 0.6
    again = np.stack([training_batch(config, tokens, step)[2] for step in range(1, 200)])
    np.testing.assert_array_equal(resets, again)  # a function of (seed, step)
    first, second = training_batch(config, tokens, 1), training_batch(config, tokens, 2)
    np.testing.assert_array_equal(first[0][:, 1:], first[1][:, :-1])
    np.testing.assert_array_equal(second[0][:, 0], first[1][:, -1])  # windows continue


def test_workdir_of_a_failed_first_attempt_can_be_reused(tmp_path, corpus):
    from seqjax.data import CorpusError

    with pytest.raises(CorpusError):
        train_and_evaluate(tiny_config(str(tmp_path / "missing.txt"), num_steps=4), tmp_path / "run")
    train_and_evaluate(tiny_config(corpus, num_steps=4), tmp_path / "run")  # the corrected path
    assert read_metrics(tmp_path / "run")[-1]["step"] == 4


def test_best_checkpoint_of_a_run_killed_before_its_first_latest_is_recomputed(tmp_path, corpus, monkeypatch):
    config = tiny_config(corpus, num_steps=8, eval_every=2, checkpoint_every=8)
    interrupt_at(monkeypatch, 5)  # best saved at steps 2 and 4, no latest checkpoint yet
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, tmp_path / "run")
    monkeypatch.undo()
    train_and_evaluate(config, tmp_path / "run")
    train_and_evaluate(config, tmp_path / "straight")
    assert load_run(tmp_path / "run").record == load_run(tmp_path / "straight").record
    assert read_metrics(tmp_path / "run") == read_metrics(tmp_path / "straight")


def test_metrics_log_does_not_load_pytorch(tmp_path):
    script = ("import sys; from seqjax.training.metrics_log import MetricsLog; "
              f"log = MetricsLog({str(tmp_path)!r}); log.write({{'step': 1, 'train_loss': 2.0}}); "
              "log.close(); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "False"
    assert any((tmp_path / "tensorboard").iterdir())


def test_unreadable_latest_checkpoint_is_set_aside_and_the_one_before_resumes(tmp_path,
                                                                              finished_run):
    config, run = finished_run("gru")
    copied(run, tmp_path / "run")
    finished = read_metrics(tmp_path / "run")
    damage_checkpoint(tmp_path / "run" / "checkpoints" / "latest" / "12")
    with pytest.warns(UnreadableCheckpointWarning, match="latest/12 cannot be read"):
        train_and_evaluate(config, tmp_path / "run")  # resumes at 8, recomputes 9..12
    assert read_metrics(tmp_path / "run") == finished
    assert (tmp_path / "run" / "checkpoints" / "unreadable" / "latest-12" / "state").is_dir()
    for step in (8, 12):
        damage_checkpoint(tmp_path / "run" / "checkpoints" / "latest" / str(step))
    with pytest.raises(UnreadableCheckpointError, match="latest/12 cannot be read.*fresh --workdir"):
        train_and_evaluate(config, tmp_path / "run")
    assert sorted(RunCheckpoints(tmp_path / "run" / "checkpoints").latest.all_steps()) == [8, 12]
    assert read_metrics(tmp_path / "run") == finished  # nothing moved, nothing lost


def test_failed_sibling_reads_of_a_damaged_checkpoint_are_not_logged(caplog, monkeypatch):
    """orbax reads every array at once; after the first damaged read is reported, the other
    reads' failures must not reach the log as tracebacks when their tasks are collected. The
    same damage in a task that is not orbax's, or another failure, is logged."""
    async def not_orbax(message):
        raise ValueError(message)

    def abandon_failed_reads(message, read):  # a task and a bare future, both never awaited
        loop = asyncio.new_event_loop()
        task = loop.create_task(read(message) if read is not_orbax else read())
        future = loop.create_future()
        future.set_exception(ValueError(message))
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        del task, future
        gc.collect()

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # restored after the test
    _quiet_abandoned_reads()
    gc.collect()  # what earlier tests left behind is not this test's
    damage, other = 'OUT_OF_RANGE: Error opening "zarr" driver', "a failure that is not damage"
    with caplog.at_level("ERROR", logger="asyncio"):
        abandon_failed_reads(damage, orbax_async_read(damage))
        assert not caplog.records
        abandon_failed_reads(other, orbax_async_read(other))
        abandon_failed_reads(damage, not_orbax)
    logged = [(r.getMessage().split("\n")[0], r.exc_info[1].args[0]) for r in caplog.records]
    task, future = "Task exception was never retrieved", "Future exception was never retrieved"
    assert sorted(logged) == sorted([(task, other), (future, other), (task, damage)])


def test_a_workdir_in_use_by_another_run_is_refused(tmp_path, corpus):
    with claim_workdir(tmp_path / "run"):  # another run holds it
        with pytest.raises(WorkdirError, match=r"in use by another training run \(pid"):
            train_and_evaluate(tiny_config(corpus, num_steps=4), tmp_path / "run")
    train_and_evaluate(tiny_config(corpus, num_steps=4), tmp_path / "run")  # free again
    assert read_metrics(tmp_path / "run")[-1]["step"] == 4


def test_a_full_disk_stops_with_one_message_and_the_rerun_resumes(tmp_path, finished_run,
                                                                  monkeypatch):
    config, straight = finished_run("lstm")
    real_save = RunCheckpoints.save_latest

    def save_or_fill_the_disk(self, step, state, record):
        if step == 8:  # what orbax raises when the disk is full
            raise ValueError("RESOURCE_EXHAUSTED: Error writing local file ...: No space left on "
                             "device [os_error_code='28']")
        return real_save(self, step, state, record)

    monkeypatch.setattr(RunCheckpoints, "save_latest", save_or_fill_the_disk)
    with pytest.raises(WorkdirError, match="no space left.*checkpoint is intact.*rerun"):
        train_and_evaluate(config, tmp_path / "run")
    monkeypatch.undo()
    train_and_evaluate(config, tmp_path / "run")
    assert read_metrics(tmp_path / "run") == read_metrics(straight)


def test_a_moved_run_resumes_in_its_new_place(tmp_path, corpus, monkeypatch):
    config = tiny_config(corpus, "elman")
    train_and_evaluate(config, tmp_path / "straight")
    interrupt_at(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, tmp_path / "run")
    monkeypatch.undo()
    (tmp_path / "run").rename(tmp_path / "moved")
    train_and_evaluate(config, tmp_path / "moved")
    assert read_metrics(tmp_path / "moved") == read_metrics(tmp_path / "straight")


def test_a_non_finite_step_keeps_the_state_and_records_its_step():
    """``train_step`` hands back the state it was given from the first non-finite step on."""
    optimizer = optax.sgd(0.1)
    loss_fn = lambda params, carry, batch, key: (jnp.sum(batch * params["w"] ** 2), carry)
    step_fn = jax.jit(partial(train_step, loss_fn, optimizer, 0))
    state, diverged_at = init_train_state({"w": jnp.ones(3)}, optimizer), jnp.zeros((), jnp.int32)
    states = []
    for step in range(8):
        batch = jnp.full(3, jnp.nan if step == 5 else 1.0)  # the 6th update is not finite
        state, _, diverged_at = step_fn(state, diverged_at, batch)
        states.append(state)
    assert int(diverged_at) == 6 and int(state.step) == 5
    jax.tree.map(np.testing.assert_array_equal, state, states[4])


def test_divergence_between_log_steps_stops_at_the_next_one(tmp_path, corpus, monkeypatch):
    config = tiny_config(corpus, "lstm", log_every=4, eval_every=4, checkpoint_every=4)
    real_batch, real_loss = language_modeling.training_batch, LanguageModeling.loss

    def poisoned_batch(config, tokens, step, rows=slice(None)):
        inputs, targets, reset = real_batch(config, tokens, step, rows)
        return (inputs - 1000 if step == 5 else inputs), targets, reset  # the 6th update

    def loss_that_sees_poison(self, params, carry, batch, dropout_key):
        loss, carry = real_loss(self, params, carry, batch, dropout_key)
        return jnp.where(jnp.any(batch[0] < 0), jnp.nan, loss), carry

    monkeypatch.setattr(language_modeling, "training_batch", poisoned_batch)
    monkeypatch.setattr(LanguageModeling, "loss", loss_that_sees_poison)
    with pytest.raises(TrainingDivergedError, match="diverged at step 6"):
        train_and_evaluate(config, tmp_path / "run")
    assert RunCheckpoints(tmp_path / "run" / "checkpoints").latest.all_steps() == [4]
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [4]


class StepOutput:
    """A dispatched step's output that records when the host waited for it."""

    def __init__(self, step, waited):
        self.step, self.waited = step, waited

    def block_until_ready(self):
        self.waited.append(self.step)
        return self


def test_the_host_waits_for_the_oldest_step_beyond_the_limit():
    pending, waited = collections.deque(), []
    for step in range(10):
        loop.wait_for_steps_ahead(pending, StepOutput(step, waited), limit=3)
        assert len(pending) == min(step + 1, 3)
        assert waited == list(range(max(step - 2, 0)))  # every older step, oldest first
    assert [output.step for output in pending] == [7, 8, 9]


def test_the_loop_runs_at_most_max_steps_ahead_of_the_device(tmp_path, corpus, monkeypatch):
    """A run that logs only at its end still waits as it goes (several CPU devices deadlock
    once 32 programs per device are in flight, loop.MAX_STEPS_AHEAD)."""
    num_steps = loop.MAX_STEPS_AHEAD + 8
    config = tiny_config(corpus, "lstm", num_steps=num_steps, log_every=num_steps,
                         eval_every=num_steps, checkpoint_every=num_steps)
    real, most_pending = loop.wait_for_steps_ahead, []

    def counted(pending, step_output, limit=loop.MAX_STEPS_AHEAD):
        real(pending, step_output, limit)
        most_pending.append(len(pending))

    monkeypatch.setattr(loop, "wait_for_steps_ahead", counted)
    train_and_evaluate(config, tmp_path / "run")
    assert len(most_pending) == num_steps  # every step's output went through the wait
    assert max(most_pending) == loop.MAX_STEPS_AHEAD
    assert loop.MAX_STEPS_AHEAD + 1 < 32  # in flight while the next step is dispatched
