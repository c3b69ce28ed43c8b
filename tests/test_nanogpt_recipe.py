"""``nanogpt_cpu.py`` trains as nanoGPT does: from the same weights, on the same batches, seqjax's
update (the GPT's loss and gradients, global-norm clipping, AdamW decaying the matrices only)
follows nanoGPT's PyTorch step (:mod:`experiments.benchmarks.nanogpt_torch`) step by step."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import torch

from experiments.benchmarks import nanogpt_torch
from experiments.configs import nanogpt_cpu
from seqjax.models import build_model
from seqjax.training.language_modeling import language_model_loss
from seqjax.training.optimizer import make_optimizer
from seqjax.training.step import init_train_state, train_step

VOCAB, LAYERS, HEADS, WIDTH, BATCH, LENGTH = 65, 2, 4, 32, 4, 16


def test_the_config_has_nanogpts_hyperparameters():
    config, hp = nanogpt_cpu.get_config(), nanogpt_torch.HPARAMS
    assert (config.model.num_layers, config.model.num_heads, config.model.width) == (
        hp["n_layer"], hp["n_head"], hp["n_embd"])
    assert (config.batch_size, config.seq_len) == (hp["batch_size"], hp["block_size"])
    assert (config.optim.learning_rate, config.optim.end_learning_rate, config.optim.warmup_steps,
            config.optim.b1, config.optim.b2, config.optim.weight_decay, config.optim.grad_clip) == (
        hp["learning_rate"], hp["min_lr"], hp["warmup_iters"], hp["beta1"], hp["beta2"],
        hp["weight_decay"], hp["grad_clip"])


def test_training_from_nanogpts_weights_follows_nanogpts_steps():
    config = nanogpt_cpu.get_config()
    config.model.update(num_layers=LAYERS, num_heads=HEADS, width=WIDTH)
    # A large learning rate, so that weight decay moves the matrices well past rounding, and a
    # small clipping norm, so that clipping acts at every step.
    config.optim.update(learning_rate=0.05, end_learning_rate=0.005, warmup_steps=2, grad_clip=0.5)
    config.num_steps = 6
    torch.manual_seed(0)
    reference = nanogpt_torch.GPT(VOCAB, LENGTH, LAYERS, HEADS, WIDTH)
    with torch.no_grad():  # LayerNorm scales away from 1, so that a mix-up of them shows
        for parameter in reference.parameters():
            if parameter.dim() == 1:
                parameter.add_(0.1 * torch.randn_like(parameter))
    torch_optimizer = nanogpt_torch.make_optimizer(reference, {
        **nanogpt_torch.HPARAMS, "learning_rate": config.optim.learning_rate})
    model = build_model(config.model, VOCAB, LENGTH)
    params = jax.tree.map(jnp.asarray, nanogpt_torch.seqjax_params(
        reference.state_dict(), LAYERS, HEADS))
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, LENGTH), jnp.int32))
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, shapes["params"])
    optimizer, schedule = make_optimizer(config.optim, config.num_steps)
    step = jax.jit(partial(train_step, partial(language_model_loss, model), optimizer, config.seed))
    state, diverged_at = init_train_state(params, optimizer), jnp.zeros((), jnp.int32)
    rng = np.random.default_rng(0)
    for k in range(config.num_steps):
        tokens = rng.integers(0, VOCAB, (BATCH, LENGTH + 1)).astype(np.int32)
        batch = (tokens[:, :-1], tokens[:, 1:], np.ones(BATCH, bool))
        state, loss, diverged_at = step(state, diverged_at, batch)
        for group in torch_optimizer.param_groups:  # the schedule: the test below
            group["lr"] = float(schedule(k))
        torch_loss = nanogpt_torch.batch_loss(reference, *batch[:2])
        torch_optimizer.zero_grad(set_to_none=True)
        torch_loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), config.optim.grad_clip)
        torch_optimizer.step()
        assert norm > config.optim.grad_clip  # clipping acted
        np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-5)
    expected = nanogpt_torch.seqjax_params(reference.state_dict(), LAYERS, HEADS)
    # Measured: 2.3e-6 at most (AdamW turns rounding in small gradients into steps of the
    # learning rate's size); weight decay alone moves the matrices by ~1e-3.
    jax.tree.map(partial(np.testing.assert_allclose, atol=1e-5, rtol=0), state.params, expected)
    assert int(diverged_at) == 0


def test_the_schedule_is_nanogpts_after_the_warmup():
    """Cosine decay from ``warmup_steps`` on, as nanoGPT's ``get_lr``. The warmup is optax's:
    ``lr k / W`` from 0 (nanoGPT's is ``lr (k + 1) / (W + 1)``), at most ``lr / W`` apart."""
    config = nanogpt_cpu.get_config()
    _, schedule = make_optimizer(config.optim, config.num_steps)
    hp, warmup = nanogpt_torch.HPARAMS, config.optim.warmup_steps
    steps = np.arange(config.num_steps)
    ours = np.asarray(jax.vmap(schedule)(steps))
    theirs = np.array([nanogpt_torch.get_lr(k, hp, config.num_steps) for k in steps])
    np.testing.assert_allclose(ours[warmup:], theirs[warmup:], rtol=1e-5)
    assert np.all(np.abs(ours[:warmup] - theirs[:warmup]) <= hp["learning_rate"] / warmup)
