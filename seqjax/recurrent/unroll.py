"""Drive a pure cell over a sequence with ``jax.lax.scan``.

All functions here take ONE sequence ``xs: [T, input_size]``; batch them with ``jax.vmap``
(see :mod:`seqjax.recurrent.layers` for the batched Flax shells). ``step`` is a cell's
``step(params, carry, x) -> (carry, h)`` from :mod:`seqjax.recurrent.cells`.

Variable lengths are given as ``seq_length`` (a scalar, the number of valid steps at the
front of ``xs``), the representation fast kernels use: the final carry is the one at the
sequence's own last valid step, outputs past it are zero, and ``reverse`` runs over the
valid part only (step ``seq_length - 1`` first), so padding never changes a result.
"""

import jax
import jax.numpy as jnp


def valid_part_reversal(num_steps, seq_length):
    """Index permutation that reverses ``[0, seq_length)`` and leaves the padding in place."""
    t = jnp.arange(num_steps)
    return jnp.where(t < seq_length, seq_length - 1 - t, t)


def unroll(step, params, xs, carry, *, seq_length=None, reverse=False, unroll=1):
    """Run ``step`` over ``xs: [T, I]`` from ``carry``; returns ``(final_carry, hs: [T, H])``.

    ``hs[t]`` is the output of time step ``t`` (in input order also when ``reverse``).
    """
    num_steps = xs.shape[0]
    if seq_length is None:
        def body(carry, x):
            return step(params, carry, x)

        return jax.lax.scan(body, carry, xs, reverse=reverse, unroll=unroll)

    order = valid_part_reversal(num_steps, seq_length) if reverse else jnp.arange(num_steps)

    def masked_body(carry, t_and_x):
        t, x = t_and_x
        new_carry, h = step(params, carry, x)
        valid = t < seq_length
        carry = jax.tree.map(lambda new, old: jnp.where(valid, new, old), new_carry, carry)
        return carry, jnp.where(valid, h, jnp.zeros_like(h))

    final_carry, hs = jax.lax.scan(
        masked_body, carry, (jnp.arange(num_steps), xs[order]), unroll=unroll
    )
    return final_carry, hs[order]


_unroll_one_layer = unroll  # the helpers below take an ``unroll`` argument that shadows it

def unroll_stacked(step, layer_params, xs, carries, *, seq_length=None, unroll=1):
    """Stacked layers: layer ``l`` reads the outputs of layer ``l - 1``.

    ``layer_params`` and ``carries`` are sequences with one entry per layer. Returns
    ``(final_carries, hs)`` with a list of final carries and the top layer's ``hs: [T, H]``.
    """
    final_carries = []
    hs = xs
    for params, carry in zip(layer_params, carries, strict=True):
        carry, hs = _unroll_one_layer(step, params, hs, carry, seq_length=seq_length, unroll=unroll)
        final_carries.append(carry)
    return final_carries, hs


def unroll_bidirectional(
    step, forward_params, backward_params, xs, forward_carry, backward_carry, *,
    seq_length=None, unroll=1,
):
    """A forward and a backward pass over ``xs``; outputs concatenated: ``hs: [T, 2H]``.

    Returns ``((forward_final, backward_final), hs)``; ``backward_final`` is the carry after
    the backward pass has read step 0, ``hs[t] = [h_forward_t, h_backward_t]``.
    """
    forward_final, forward_hs = _unroll_one_layer(
        step, forward_params, xs, forward_carry, seq_length=seq_length, unroll=unroll
    )
    backward_final, backward_hs = _unroll_one_layer(
        step, backward_params, xs, backward_carry,
        seq_length=seq_length, reverse=True, unroll=unroll,
    )
    return (forward_final, backward_final), jnp.concatenate([forward_hs, backward_hs], axis=-1)
