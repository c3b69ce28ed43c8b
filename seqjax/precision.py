"""Mixed precision: the compute dtype a model runs its matrix products in.

A config names it (``model.dtype = "bfloat16"``); parameters and optimizer state stay float32
whatever it is, so checkpoints are float32 and an update never loses the small steps that
bfloat16's 8-bit mantissa would round away. Each model says which of its parts stay float32
(for a Transformer: the residual stream, normalisation statistics, the attention softmax and
the logits, as PyTorch's autocast does).
"""

import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
DEFAULT_COMPUTE_DTYPE = "float32"  # also what every run saved before model.dtype existed used


def model_dtype_name(model_config):
    """The compute dtype a ``model`` config section names (:data:`DEFAULT_COMPUTE_DTYPE` when it
    has no ``dtype``, as in configs written before mixed precision)."""
    return model_config.get("dtype", DEFAULT_COMPUTE_DTYPE)


def compute_dtype(name):
    """The jnp dtype named ``name`` (a key of :data:`COMPUTE_DTYPES`), or a ``ValueError``."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(
            f"unknown model dtype {name!r}: choose one of {', '.join(map(repr, COMPUTE_DTYPES))}"
        )
    return COMPUTE_DTYPES[name]
