"""Losses and metrics of each task kind, pure functions of model outputs and a batch.

Every objective maps ``(outputs, batch) -> (loss, metrics)`` with ``metrics`` a dict of
scalars that includes ``"loss"``; steps past a sequence's length never count.

- classification: ``logits [B, C]``, mean cross-entropy, ``accuracy``;
- regression: ``predictions [B, 1]``, mean squared error ``mse``;
- tagging: ``logits [B, T, C]``, cross-entropy per valid step, ``accuracy`` per step and
  ``exact_match`` (every tag of a sequence right);
- seq2seq: teacher-forced ``logits [B, T_out, V]``, cross-entropy per target step (``EOS``
  included), ``token_accuracy``; the free-running ``exact_match`` comes from decoding
  (:func:`exact_match`).
"""

import jax.numpy as jnp

from seqjax.losses import token_cross_entropy

PRIMARY_METRIC = {
    "classification": "accuracy", "regression": "mse", "tagging": "accuracy",
    "seq2seq": "exact_match",
}


def step_mask(lengths, num_steps):
    """``[B, num_steps]`` float mask: 1 at the valid steps ``t < lengths[b]``."""
    return (jnp.arange(num_steps)[None, :] < lengths[:, None]).astype(jnp.float32)


def masked_mean(values, mask):
    """Mean of ``values`` over the entries where ``mask`` is 1."""
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def classification_objective(logits, batch):
    loss = jnp.mean(token_cross_entropy(logits, batch.targets))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch.targets)
    return loss, {"loss": loss, "accuracy": accuracy}


def regression_objective(predictions, batch):
    mse = jnp.mean((predictions[:, 0] - batch.targets) ** 2)
    return mse, {"loss": mse, "mse": mse}


def _per_step(logits, batch):
    """Masked per-step losses and hits of ``logits [B, T, C]`` against ``batch.targets [B, T]``."""
    mask = step_mask(batch.target_lengths, batch.targets.shape[1])
    losses = token_cross_entropy(logits, batch.targets)
    hits = (jnp.argmax(logits, -1) == batch.targets).astype(jnp.float32)
    return mask, losses, hits


def tagging_objective(logits, batch):
    mask, losses, hits = _per_step(logits, batch)
    loss = masked_mean(losses, mask)
    sequence_right = jnp.all((hits == 1) | (mask == 0), axis=1)
    return loss, {"loss": loss, "accuracy": masked_mean(hits, mask),
                  "exact_match": jnp.mean(sequence_right)}


def seq2seq_objective(logits, batch):
    mask, losses, hits = _per_step(logits, batch)
    loss = masked_mean(losses, mask)
    return loss, {"loss": loss, "token_accuracy": masked_mean(hits, mask)}


OBJECTIVES = {
    "classification": classification_objective, "regression": regression_objective,
    "tagging": tagging_objective, "seq2seq": seq2seq_objective,
}


def exact_match(predicted, targets, target_lengths):
    """``[B]`` bool: the decoded ``predicted [B, T']`` equals ``targets [B, T]`` up to and
    including its ``EOS`` (step ``target_lengths - 1``); what follows ``EOS`` is ignored."""
    num_steps = targets.shape[1]
    if predicted.shape[1] < num_steps:
        pad = jnp.zeros((predicted.shape[0], num_steps - predicted.shape[1]), predicted.dtype)
        predicted = jnp.concatenate([predicted, pad - 1], axis=1)
    agree = predicted[:, :num_steps] == targets
    return jnp.all(agree | (step_mask(target_lengths, num_steps) == 0), axis=1)
