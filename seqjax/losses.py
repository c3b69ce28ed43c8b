"""Maximum-likelihood objectives: next-element cross-entropy in nats, and bits.

.. math::

    \\mathcal{L} = -\\frac{1}{N} \\sum_{n} \\log p_\\theta(y_n \\mid \\text{context}_n)
    \\quad \\text{[nats/token]}, \\qquad \\text{bits/token} = \\mathcal{L} / \\ln 2
"""

import math

import jax.numpy as jnp
import optax


def token_cross_entropy(logits, targets):
    """Per-token negative log-likelihood in nats: ``logits [..., V]``, ``targets [...]`` -> ``[...]``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)


def mean_cross_entropy(logits, targets):
    """Mean next-token loss in nats/token."""
    return jnp.mean(token_cross_entropy(logits, targets))


def nats_to_bits(nats):
    """Convert a loss in nats to bits (divide by ``ln 2``)."""
    return nats / math.log(2.0)
