"""Mixed precision: the compute dtype a model runs its matrix products in.

A config names it (``model.dtype = "bfloat16"``); parameters and optimizer state stay float32
whatever it is, so checkpoints are float32 and an update never loses the small steps that
bfloat16's 8-bit mantissa would round away. Each model says which of its parts stay float32
(for a Transformer: the residual stream, normalisation statistics, the attention softmax and
the logits, as PyTorch's autocast does; for a recurrent layer: its carry, the LSTM's cell
state included, and every gate nonlinearity).

Every model's output layer (the logits' or predictions' product) multiplies in the compute
dtype and returns float32 (:data:`float32_output_dot_general`), so the loss, a softmax over the
vocabulary and a beam's log-probability are never rounded to bfloat16.

The recurrent cells are pure functions of their parameter dict, so for them the policy is two
functions: :func:`compute_weights` casts a cell's matrices to the compute dtype, and the cells
multiply by them with :func:`matmul`, which rounds the other operand to the weights' dtype and
returns float32. With float32 weights both are the identity.
"""

from functools import partial

import jax
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


def compute_weights(params, dtype):
    """``params`` with every matrix (leaf of 2 or more axes) cast to ``dtype``; vectors (biases)
    stay as they are. Call it inside the function being differentiated, per step of a scan:
    then the weights' gradients are summed over the steps in the parameters' float32."""
    return {name: value.astype(dtype) if value.ndim >= 2 else value
            for name, value in params.items()}


def matmul(weights, x):
    """``weights @ x`` in the weights' dtype (``x`` is rounded to it), returned in at least
    float32: a bfloat16 product for bfloat16 weights, exactly ``weights @ x`` for float32.

    The product's own sum runs in float32 inside XLA's bfloat16 dot on CPUs and GPUs; only its
    result is rounded. Its gradient products run in the weights' dtype too."""
    result = jnp.matmul(weights, x.astype(weights.dtype))
    return result.astype(jnp.promote_types(weights.dtype, jnp.float32))


def einsum(spec, a, b, dtype):
    """``jnp.einsum(spec, a, b)`` with both operands rounded to ``dtype``, returned in at least
    float32 (the hand-written gradients of :mod:`seqjax.recurrent.fused_bptt` use it)."""
    result = jnp.einsum(spec, a.astype(dtype), b.astype(dtype))
    return result.astype(jnp.promote_types(dtype, jnp.float32))


def float32_output_dot_general(lhs, rhs, dimension_numbers, precision=None,
                               preferred_element_type=None):
    """``jax.lax.dot_general`` for an output head (a Flax layer's ``dot_general``): the product
    runs in the operands' dtype and returns its float32 sum unrounded; its two gradient
    products run in the operands' dtype too (the float32 cotangent is rounded to it, as under
    PyTorch's autocast). The plain product in float32."""
    del preferred_element_type  # always float32
    return _float32_output_product(lhs, rhs, dimension_numbers, precision)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _float32_output_product(lhs, rhs, dimension_numbers, precision):
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision,
                               preferred_element_type=jnp.float32)


def _float32_output_product_forward(lhs, rhs, dimension_numbers, precision):
    return _float32_output_product(lhs, rhs, dimension_numbers, precision), (lhs, rhs)


def _float32_output_product_backward(dimension_numbers, precision, operands, cotangent):
    lhs, rhs = operands
    product = partial(jax.lax.dot_general, dimension_numbers=dimension_numbers,
                      precision=precision)
    _, gradients = jax.vjp(product, lhs, rhs)
    return gradients(cotangent.astype(jnp.result_type(lhs, rhs)))


_float32_output_product.defvjp(_float32_output_product_forward, _float32_output_product_backward)
