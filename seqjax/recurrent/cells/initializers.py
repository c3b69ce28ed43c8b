"""Default weight initializers shared by the recurrent cells.

Recurrent matrices are orthogonal (Saxe et al. 2014), which keeps the repeated product
``W_h^T`` well conditioned at the start of training; input matrices are LeCun-normal, the
default of ``flax.linen.Dense``. A fused ``[k*H, H]`` recurrent matrix gets one orthogonal
``[H, H]`` block per gate.
"""

import jax
import jax.numpy as jnp


def recurrent_init(key, shape, dtype=jnp.float32):
    """Orthogonal ``[H, H]`` blocks stacked along the first axis: ``shape = [k*H, H]``."""
    rows, hidden_size = shape
    num_blocks = rows // hidden_size
    keys = jax.random.split(key, num_blocks)
    orthogonal = jax.nn.initializers.orthogonal()
    blocks = [orthogonal(k, (hidden_size, hidden_size), dtype) for k in keys]
    return jnp.concatenate(blocks, axis=0)


def input_init(key, shape, dtype=jnp.float32):
    """LeCun-normal over the input (last) axis: ``shape = [out, in]``."""
    return jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)(key, shape, dtype)
