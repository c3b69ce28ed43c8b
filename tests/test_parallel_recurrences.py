"""The cells linear in the state as models: they train through ``experiments.train``'s loop and
resume exactly, learn a sequence task, and generate with a carried state exactly what
recomputing the prefix gives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs.tasks import task_config
from seqjax.models.recurrent_lm import RecurrentLM
from seqjax.recurrent.cells import LINEAR_CELLS
from seqjax.tasks.baselines import chance_baseline
from seqjax.training import train_and_evaluate
from seqjax.training.metrics_log import read_metrics
from seqjax.training.sequence_tasks import task_from_config
from seqjax.text_generation import load_run
from tests.test_train import interrupt_at
from tests.training_configs import tiny_config, write_corpus

KINDS = sorted(LINEAR_CELLS)


@pytest.mark.parametrize("kind, block", [(kind, "none") for kind in KINDS] + [
    ("rg_lru", "residual")])
def test_language_model_learns_and_resumes_exactly(tmp_path, monkeypatch, kind, block):
    corpus = write_corpus(tmp_path)
    config = tiny_config(corpus, kind, num_steps=40, eval_every=20, checkpoint_every=20,
                         **{"optim.learning_rate": 2e-2, "model.num_layers": 1,
                            "model.block": block})
    train_and_evaluate(config, tmp_path / "straight")
    records = read_metrics(tmp_path / "straight")
    vocab_size = load_run(tmp_path / "straight").tokenizer.vocab_size
    assert records[-1]["val_loss"] < 0.75 * math.log(vocab_size), records[-1]

    interrupt_at(monkeypatch, 27)  # checkpoint at 20, records up to 27
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, tmp_path / "resumed")
    monkeypatch.undo()
    train_and_evaluate(config, tmp_path / "resumed")
    assert read_metrics(tmp_path / "resumed") == records
    jax.tree.map(np.testing.assert_array_equal, load_run(tmp_path / "resumed").params,
                 load_run(tmp_path / "straight").params)


@pytest.mark.parametrize("kind, block", [(kind, "none") for kind in KINDS] + [
    ("rg_lru", "residual"), ("min_gru", "residual")])
def test_generation_with_a_carried_state_equals_recomputing_the_prefix(kind, block):
    model = RecurrentLM(vocab_size=11, cell=kind, embed_size=8, hidden_size=16, num_layers=2,
                        scan="associative", block=block)
    prompt = jnp.array([[1, 4, 2], [3, 3, 7]])
    params = model.init(jax.random.PRNGKey(0), prompt)["params"]
    apply = jax.jit(lambda tokens: model.apply({"params": params}, tokens)[0])
    decode = jax.jit(lambda state, token: model.apply({"params": params}, state, token,
                                                      method=RecurrentLM.decode_step))
    state = model.initial_carry(prompt.shape[0])
    for t in range(prompt.shape[1]):
        logits, state = decode(state, prompt[:, t])
    carried, recomputed = prompt, prompt
    for _ in range(12):  # greedy: the carried state against the whole prefix run again
        token = jnp.argmax(logits, -1)
        carried = jnp.concatenate([carried, token[:, None]], 1)
        recomputed = jnp.concatenate(
            [recomputed, jnp.argmax(apply(recomputed)[:, -1], -1)[:, None]], 1)
        np.testing.assert_allclose(logits, apply(carried[:, :-1])[:, -1], rtol=1e-4, atol=1e-5)
        logits, state = decode(state, token)
    np.testing.assert_array_equal(carried, recomputed)


@pytest.mark.parametrize("kind", KINDS)
def test_each_cell_learns_a_sequence_task_well_above_chance(tmp_path, kind):
    config = task_config("counting", kind)
    config.task_options.max_length = 8
    config.update(num_steps=200, batch_size=32, eval_examples=128, log_every=50, eval_every=200,
                  checkpoint_every=200, progress_bar=False)
    config.model.hidden_size = 32
    record = train_and_evaluate(config, tmp_path)
    task = task_from_config(config)
    chance = chance_baseline(task, task.held_out_set(config.seed, config.eval_examples))[1]
    assert record["val_accuracy"] > chance + 0.4, (record, chance)


def test_char_lm_table_trains_every_family_at_matched_parameters(tmp_path, capsys):
    from experiments import char_lm_table

    report = char_lm_table.run_table(tmp_path, char_lm_table.BUDGETS["tiny"],
                                     kinds=("transformer", "lstm", "min_gru", "rg_lru"))
    counts = [row["non_embedding_parameters"] for row in report["rows"]]
    assert [row["kind"] for row in report["rows"]] == ["transformer", "lstm", "min_gru", "rg_lru"]
    assert max(counts) / min(counts) < 1.1, counts
    for row in report["rows"]:
        assert row["val_loss"] == row["curve"][-1][1] and row["best_val_loss"] <= row["val_loss"]
    table = char_lm_table.markdown_table(report)
    assert table.count("\n") == 5 and "residual blocks" in table
