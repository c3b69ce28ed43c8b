"""Positional information for attention, which by itself is blind to token order.

Three choices, named by the config string ``positional``:

- ``"learned"``: a trained table ``[num_positions, W]`` added to the token embeddings (GPT-2);
- ``"sinusoidal"``: the fixed table of Vaswani et al. (2017), added to the token embeddings;
- ``"rotary"``: RoPE (Su et al. 2021), rotates queries and keys inside attention so that
  ``q_p . k_s`` depends on ``p - s`` only; nothing is added to the embeddings.

Every function takes explicit integer ``positions``, so decoding one token at position ``p``
uses the same code as a full sequence.
"""

import flax.linen as nn
import jax.numpy as jnp

POSITIONAL_KINDS = ("learned", "sinusoidal", "rotary")


def check_positional_kind(kind):
    """Raise a ``ValueError`` naming the choices unless ``kind`` is in :data:`POSITIONAL_KINDS`."""
    if kind not in POSITIONAL_KINDS:
        raise ValueError(
            f"unknown positional encoding {kind!r}: choose one of "
            f"{', '.join(map(repr, POSITIONAL_KINDS))}"
        )


def _check_even(width, what):
    if width % 2:
        raise ValueError(f"{what} needs an even width, got {width}: use an even width/head_dim")


def sinusoidal_features(positions, width):
    """Sinusoidal encodings of integer ``positions: [...]`` -> ``[..., width]``.

    .. math::

        PE_{p, 2i} = \\sin(p / 10000^{2i / W}), \\qquad PE_{p, 2i+1} = \\cos(p / 10000^{2i / W})
    """
    _check_even(width, "the sinusoidal encoding")
    frequencies = 10000.0 ** (-jnp.arange(0, width, 2) / width)  # [W/2]
    angles = jnp.asarray(positions, jnp.float32)[..., None] * frequencies
    features = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)  # [..., W/2, 2]
    return features.reshape(*features.shape[:-2], width)


def sinusoidal_encoding(num_positions, width):
    """The ``[num_positions, width]`` table of :func:`sinusoidal_features` at ``0, 1, ...``."""
    return sinusoidal_features(jnp.arange(num_positions), width)


def rotary_angles(positions, head_dim, base=10000.0):
    """RoPE angles ``theta_{p, i} = p * base^{-2i / head_dim}``: ``[...] -> [..., head_dim/2]``."""
    _check_even(head_dim, "rotary embedding")
    frequencies = base ** (-jnp.arange(0, head_dim, 2) / head_dim)
    return jnp.asarray(positions, jnp.float32)[..., None] * frequencies


def apply_rotary(x, positions, base=10000.0):
    """Rotate each pair ``(x_{2i}, x_{2i+1})`` of ``x: [..., head_dim]`` by ``theta_{p, i}``.

    ``positions`` broadcasts to ``x.shape[:-1]`` (for ``[B, T, N, H]`` pass ``[T, 1]``).

    .. math::

        \\begin{pmatrix} y_{2i} \\\\ y_{2i+1} \\end{pmatrix} =
        \\begin{pmatrix} \\cos\\theta & -\\sin\\theta \\\\ \\sin\\theta & \\cos\\theta \\end{pmatrix}
        \\begin{pmatrix} x_{2i} \\\\ x_{2i+1} \\end{pmatrix}

    Rotations keep norms, and ``<R_p q, R_s k> = <R_{p-s} q, k>``: attention scores see only
    relative positions.
    """
    angles = rotary_angles(positions, x.shape[-1], base)
    cos, sin = jnp.cos(angles), jnp.sin(angles)
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape).astype(x.dtype)


class LearnedPositionalEmbedding(nn.Module):
    """A trained table ``[num_positions, width]`` read at ``positions: [...]`` -> ``[..., width]``."""

    num_positions: int
    width: int
    embedding_init: nn.initializers.Initializer = nn.initializers.normal(0.02)

    @nn.compact
    def __call__(self, positions):
        table = self.param("embedding", self.embedding_init, (self.num_positions, self.width))
        return jnp.take(table, positions, axis=0)
