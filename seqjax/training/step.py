"""The training state and the one jitted update every run makes.

The update never hands a bad state back: when the loss or the new parameters are not finite
it returns the state it was given, and records the step in ``diverged_at``. So the host need
not look at the loss after every step (which would make the device wait for Python); the loop
reads ``diverged_at`` only when it logs, evaluates or checkpoints.
"""

import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
    step: jax.Array
    params: dict
    opt_state: optax.OptState
    carry: object = None  # recurrent carries of stream batching (None when nothing is carried)


def init_train_state(params, optimizer, carry=None):
    """Step 0: ``params``, fresh optimizer state and ``carry``."""
    return TrainState(jnp.array(0, jnp.int32), params, optimizer.init(params), carry)


def train_step(loss_fn, optimizer, seed, state, diverged_at, batch):
    """One update of ``state`` on ``batch``; returns ``(state, loss, diverged_at)``.

    ``loss_fn(params, carry, batch, dropout_key) -> (loss, new_carry)``, the dropout key a
    function of ``(seed, step)``. ``diverged_at`` is 0 while every update so far was finite,
    else the first non-finite step (counted from 1); from then on the state is kept as it was
    before that step, so no bad state is ever kept or checkpointed.
    """
    dropout_key = jax.random.fold_in(jax.random.PRNGKey(seed), state.step)
    (loss, new_carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.carry, batch, dropout_key
    )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_carry = jax.lax.stop_gradient(new_carry)  # truncated BPTT: no gradient across windows
    updated = state.replace(step=state.step + 1, params=params, opt_state=opt_state, carry=new_carry)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(params))
    keep = finite & (diverged_at == 0)
    diverged_at = jnp.where(finite | (diverged_at > 0), diverged_at, state.step + 1)
    return jax.tree.map(lambda new, old: jnp.where(keep, new, old), updated, state), loss, diverged_at
