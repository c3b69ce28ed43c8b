"""train_and_evaluate on the generated tasks, end to end: small configs learn well above chance, metrics.jsonl holds the
documented records, an interrupted run resumes to the same metrics, and bad configs fail with
messages that name the fix."""

import importlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from experiments.configs.tasks import ATTENTIONS, KINDS, parse_preset, task_config
from experiments.task_table import markdown_table
from seqjax.errors import CheckpointMismatchError, ConfigError
from seqjax.models.seq2seq import greedy_decode
from seqjax.models.sequence_heads import CAUSAL_TRANSFORMER
from seqjax.tasks import TASKS, Task
from seqjax.tasks.baselines import chance_baseline
from seqjax.tasks.objectives import exact_match
from seqjax.training import train_and_evaluate
from seqjax.training.config_checks import check_task_config
from seqjax.training.metrics_log import read_metrics
from seqjax.training.sequence_tasks import load_task_run, task_from_config


def tiny_config(task, preset="gru", num_steps=150, **task_options):
    config = task_config(task, preset)
    config.task_options.update(task_options)
    config.num_steps = num_steps
    config.batch_size = 32
    config.eval_examples = 128
    config.log_every = 10
    config.eval_every = num_steps
    config.checkpoint_every = num_steps
    config.model.hidden_size = 32
    config.progress_bar = False
    return config


def chance(config):
    task = task_from_config(config)
    return chance_baseline(task, task.held_out_set(config.seed, config.eval_examples))[1]


@pytest.mark.parametrize("preset", ["gru", "transformer"])
def test_classifier_learns_counting(tmp_path, preset):
    config = tiny_config("counting", preset, max_length=8)
    record = train_and_evaluate(config, tmp_path)
    assert record["val_accuracy"] > chance(config) + 0.4, record


def test_regressor_learns_the_sum(tmp_path):
    config = tiny_config("sequence_sum", "lstm", max_length=8)
    record = train_and_evaluate(config, tmp_path)
    assert record["val_mse"] < 0.2 * chance(config), record


def test_tagger_learns_seen_before(tmp_path):
    config = tiny_config("seen_before", "gru", max_length=8, alphabet="abcdef")
    record = train_and_evaluate(config, tmp_path)
    assert record["val_accuracy"] > chance(config) + 0.25, record
    assert record["val_exact_match"] > 0.5, record


def test_seq2seq_with_attention_learns_to_reverse_in_bfloat16(tmp_path):
    """Mixed precision through the whole seq2seq path: training, greedy and beam decoding, and
    the saved run (whose parameters stay float32)."""
    config = tiny_config("reverse", "gru_additive", num_steps=200, max_length=5, alphabet="abcd")
    config.model.dtype = "bfloat16"
    config.eval_beam_size = 2
    record = train_and_evaluate(config, tmp_path)
    assert record["val_exact_match"] > chance(config) + 0.5, record
    assert record["val_exact_match_beam"] > chance(config) + 0.5, record
    assert record["val_token_accuracy"] > 0.8
    # The saved run decodes the held-out set to the same score (its best checkpoint is the
    # last one: the run evaluated once).
    _, task, model, params = load_task_run(tmp_path)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    held_out = task.held_out_set(config.seed, config.eval_examples)
    decoded = greedy_decode(model, {"params": params}, held_out.inputs, held_out.input_lengths,
                            task.max_target_length)
    matches = exact_match(decoded, held_out.targets, held_out.target_lengths)
    assert float(matches.mean()) == pytest.approx(record["val_exact_match"])


class Interrupted(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_metrics(tmp_path, monkeypatch):
    config = tiny_config("parity", "elman", num_steps=20, max_length=6)
    config.eval_every, config.checkpoint_every, config.log_every = 10, 10, 5
    straight = train_and_evaluate(config, tmp_path / "straight")

    original = Task.training_batch

    def crash_at_step_15(self, seed, step, batch_size):
        if step == 15:
            raise Interrupted
        return original(self, seed, step, batch_size)

    monkeypatch.setattr(Task, "training_batch", crash_at_step_15)
    with pytest.raises(Interrupted):
        train_and_evaluate(config, tmp_path / "resumed")
    monkeypatch.undo()
    resumed = train_and_evaluate(config, tmp_path / "resumed")

    records = read_metrics(tmp_path / "straight")
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert {"val_loss", "val_accuracy"} <= set(records[1]) and "val_loss" not in records[0]
    assert records == read_metrics(tmp_path / "resumed") and resumed == straight
    # A finished run returns its last record without training again.
    assert train_and_evaluate(config, tmp_path / "resumed") == straight
    with pytest.raises(CheckpointMismatchError, match="task="):
        train_and_evaluate(tiny_config("counting", "elman", num_steps=20), tmp_path / "resumed")


@pytest.mark.parametrize("field, value, message", [
    ("task", "parrity", "unknown task 'parrity'"),
    ("model.kind", "rnn", "config.model.kind must be one of elman, lstm, gru, min_gru, min_lstm, lru, rg_lru, transformer"),
    ("model.scan", "log", "config.model.scan=.log. needs positive coefficients, which gru"),
    ("model.scan", "fast", "config.model.scan must be one of sequential, associative"),
    ("model.direction", "sideways", "config.model.direction must be one of forward"),
    ("model.attention", "luong", "config.model.attention must be one of none, additive, dot"),
    ("model.num_heads", 3, "hidden_size .* must be a multiple of config.model.num_heads"),
    ("batch_size", 0, "config.batch_size must be a positive integer"),
    ("eval_beam_size", -1, "config.eval_beam_size must be >= 0"),
])
def test_bad_configs_are_config_errors(tmp_path, field, value, message):
    config = tiny_config("reverse", "transformer" if field == "model.num_heads" else "gru")
    node = config
    *parents, last = field.split(".")
    for parent in parents:
        node = node[parent]
    node[last] = value
    with pytest.raises(ConfigError, match=message):
        train_and_evaluate(config, tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_bad_task_option_is_a_config_error(tmp_path):
    config = tiny_config("parity")
    config.task_options.max_length = 0
    with pytest.raises(ConfigError, match="min_length <= max_length"):
        train_and_evaluate(config, tmp_path)


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_config_file_builds_with_every_preset(task):
    module = importlib.import_module(f"experiments.configs.tasks.{task}")
    default = module.get_config()
    presets = list(KINDS)
    if task_from_config(default).kind == "seq2seq":
        presets += [f"{kind}_{attention}" for kind in KINDS[:3] for attention in ATTENTIONS]
    for preset in presets:
        config = module.get_config(preset)
        assert config.task == task and config.model.kind == parse_preset(preset)[0]
        if task_from_config(config).causal and config.model.kind == "transformer":
            with pytest.raises(ConfigError, match="predicts the next input"):
                check_task_config(config, task_from_config(config))
            continue
        if task_from_config(config).kind == "seq2seq" and config.model.kind == CAUSAL_TRANSFORMER:
            with pytest.raises(ConfigError, match="has no decoder"):
                check_task_config(config, task_from_config(config))
            continue
        check_task_config(config, task_from_config(config))
        assert json.loads(config.to_json())["task_options"] == dict(config.task_options)


def test_a_causal_task_refuses_encoders_that_see_later_inputs():
    config = importlib.import_module("experiments.configs.tasks.temporal_xor").get_config("gru")
    check_task_config(config, task_from_config(config))
    config.model.direction = "bidirectional"
    with pytest.raises(ConfigError, match="direction=forward"):
        check_task_config(config, task_from_config(config))


def test_bad_preset_names_the_choices():
    with pytest.raises(ConfigError, match="unknown model preset 'gru_luong'.*gru_additive"):
        parse_preset("gru_luong")
    with pytest.raises(ConfigError, match="unknown model preset 'transformer_dot'"):
        parse_preset("transformer_dot")


def test_markdown_table_layout():
    rows = {"parity": {"metric": "accuracy", "chance": 0.5, "steps": 400, "gru": 0.99, "lstm": 0.75}}
    table = markdown_table(rows, ("lstm", "gru")).splitlines()
    assert table[0] == "| task | metric | steps | chance | LSTM | GRU |"
    assert table[2] == "| `parity` | accuracy | 400 | 0.500 | 0.750 | 0.990 |"


def test_docs_table_command_exists():
    docs = (Path(__file__).parents[1] / "docs" / "tasks.md").read_text()
    assert "python -m experiments.task_table" in docs
