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

A Transformer's other products (projections, MLP, attention) and the fused BPTT's
(:func:`matmul` on ``[I, B]``, :func:`einsum`) are :func:`rounded_dot_general`: autocast's
product, computed on a CPU as a float32 sum rounded after, the form XLA:CPU runs at the CPU's
bfloat16 rate.

The recurrent cells are pure functions of their parameter dict, so for them the policy is two
functions: :func:`compute_weights` casts a cell's matrices to the compute dtype, and the cells
multiply by them with :func:`matmul`, which rounds the other operand to the weights' dtype and
returns float32. With float32 weights both are the identity.
"""

import math
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

    The product's own sum runs in float32 (for ``x`` of ``[I, B]``, on a CPU at its bfloat16
    rate: :func:`rounded_dot_general`); only its result is rounded. Its gradient products run
    in the weights' dtype too."""
    x = x.astype(weights.dtype)
    # [G, I] @ [I, B] (the fused BPTT). Not one example's [G, I] @ [I]: under vmap, a custom
    # gradient would sum one rank-1 product per example for the weights' gradient.
    if weights.ndim == 2 and x.ndim == 2:
        result = rounded_dot_general(weights, x, (((1,), (0,)), ((), ())))
    else:
        result = jnp.matmul(weights, x)
    return result.astype(jnp.promote_types(weights.dtype, jnp.float32))


def einsum(spec, a, b, dtype):
    """``jnp.einsum(spec, a, b)`` with both operands rounded to ``dtype``, returned in at least
    float32 (the hand-written gradients of :mod:`seqjax.recurrent.fused_bptt` use it); the
    product is :func:`rounded_dot_general`'s."""
    result = jnp.einsum(spec, a.astype(dtype), b.astype(dtype), _dot_general=rounded_dot_general)
    return result.astype(jnp.promote_types(dtype, jnp.float32))


def float32_output_dot_general(lhs, rhs, dimension_numbers, precision=None,
                               preferred_element_type=None):
    """``jax.lax.dot_general`` for an output head (a Flax layer's ``dot_general``): the product
    runs in the operands' dtype and returns its float32 sum unrounded; its two gradient
    products run in the operands' dtype too (the float32 cotangent is rounded to it, as under
    PyTorch's autocast). The plain product in float32."""
    del preferred_element_type  # always float32
    return _float32_output_product(lhs, rhs, dimension_numbers, precision)


def rounded_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """``jax.lax.dot_general`` as autocast computes it (a Flax layer's ``dot_general``).

    For 16-bit float operands of one dtype ``d`` (bfloat16), on a CPU::

        out = d( sum_k lhs * rhs )          the sum in float32, rounded to d after

    and its gradients are the same kind of product (:func:`_product_gradients`). XLA:CPU runs
    a bfloat16 product at the CPU's bfloat16 rate (``avx512_bf16``) only when asked for the
    float32 sum; one with a bfloat16 result it widens to float32, operands and all (a scratch
    timing on a Zen 4, ``[768, 128] x [128, 512]``: 0.31 against 0.70 ms). The numbers are
    ``dot_general``'s up to the order of the float32 sums. Every other case (float32 operands,
    mixed or integer dtypes, a wider ``preferred_element_type``, another platform) is the plain
    ``dot_general``.
    """
    plain = partial(jax.lax.dot_general, dimension_numbers=dimension_numbers, precision=precision,
                    preferred_element_type=preferred_element_type)
    asked_wider = preferred_element_type not in (None, lhs.dtype)  # einsum passes its dtype
    if asked_wider or not _low_precision_pair(lhs, rhs):
        return plain(lhs, rhs)
    on_cpu = lambda lhs, rhs: _rounded_product(lhs, rhs, dimension_numbers, precision)
    return jax.lax.platform_dependent(lhs, rhs, cpu=on_cpu, default=plain)


def _low_precision_pair(lhs, rhs):
    """Whether both operands are one 16-bit float dtype (bfloat16, float16)."""
    dtype = jnp.dtype(lhs.dtype)
    return dtype == rhs.dtype and jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize == 2


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _float32_output_product(lhs, rhs, dimension_numbers, precision):
    """``sum_k lhs * rhs`` in float32, returned unrounded (gradients: _product_gradients)."""
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision,
                               preferred_element_type=jnp.float32)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _rounded_product(lhs, rhs, dimension_numbers, precision):
    """``d(sum_k lhs * rhs)``: the float32 sum rounded to the operands' dtype ``d``."""
    return _matrix_product(lhs, rhs, dimension_numbers, precision).astype(lhs.dtype)


def _matrix_product(lhs, rhs, dimension_numbers, precision):
    """``dot_general``'s float32 sum as a product of matrices (stacks of them with batch axes)::

        out[b, m, n] = sum_k lhs[b, m, k] * rhs[b, k, n]     (rhs as [b, n, k] if so laid out)

    ``b``, ``m``, ``k`` and ``n`` are the batch, lhs-free, summed and rhs-free axes, each group
    merged into one by a reshape, then the result reshaped back. XLA:CPU merges such axes itself,
    but only after it has chosen which bfloat16 products to widen to float32, and then it may not
    run the product (JAX 0.10.2, the fused LSTM's backward: "Unsupported element type for
    DotThunk::Execute: BF16 x BF16 = F32"). Merged here, XLA either runs the product in
    bfloat16 or widens it.
    """
    (lhs_summed, rhs_summed), (lhs_batch, rhs_batch) = dimension_numbers
    lhs_free = [axis for axis in range(lhs.ndim) if axis not in (*lhs_summed, *lhs_batch)]
    rhs_free = [axis for axis in range(rhs.ndim) if axis not in (*rhs_summed, *rhs_batch)]
    out_shape = [lhs.shape[axis] for axis in (*lhs_batch, *lhs_free)] + [
        rhs.shape[axis] for axis in rhs_free]
    size = lambda x, axes: math.prod(x.shape[axis] for axis in axes)
    batch = [size(lhs, lhs_batch)] if len(lhs_batch) else []
    rows, summed, columns = size(lhs, lhs_free), size(lhs, lhs_summed), size(rhs, rhs_free)
    lhs = jnp.transpose(lhs, (*lhs_batch, *lhs_free, *lhs_summed)).reshape(*batch, rows, summed)
    rhs_order = (*rhs_batch, *rhs_free, *rhs_summed)
    if rhs_order == tuple(range(rhs.ndim)):  # already [b, n, k]: no copy
        rhs, rhs_summed_axis = rhs.reshape(*batch, columns, summed), len(batch) + 1
    else:
        rhs = jnp.transpose(rhs, (*rhs_batch, *rhs_summed, *rhs_free))
        rhs, rhs_summed_axis = rhs.reshape(*batch, summed, columns), len(batch)
    numbers = (((len(batch) + 1,), (rhs_summed_axis,)), ((0,), (0,)) if batch else ((), ()))
    out = jax.lax.dot_general(lhs, rhs, numbers, precision, preferred_element_type=jnp.float32)
    return out.reshape(out_shape)


def _keep_operands(product):
    """The forward rule of a product's ``custom_vjp``: its value, and the operands as residuals."""
    return lambda lhs, rhs, numbers, precision: (product(lhs, rhs, numbers, precision), (lhs, rhs))


def _product_gradients(dimension_numbers, precision, operands, cotangent):
    """The gradients of ``out = sum_k lhs * rhs`` from ``c``, the cotangent rounded to the
    operands' dtype ``d``, as autocast computes them::

        d_lhs = d( sum c * rhs ),   d_rhs = d( sum c * lhs )      (sums over out's other axes)

    On a CPU with 16-bit float operands each sum runs in float32 and is rounded after (the form
    XLA:CPU runs at the bfloat16 rate); otherwise they are JAX's own transposition.
    """
    lhs, rhs = operands
    dtype = jnp.result_type(lhs, rhs)
    cotangent = cotangent.astype(dtype)
    product = partial(jax.lax.dot_general, dimension_numbers=dimension_numbers,
                      precision=precision)
    transposed = lambda cotangent: jax.vjp(product, lhs, rhs)[1](cotangent)
    if not _low_precision_pair(lhs, rhs):
        return transposed(cotangent)
    lhs_axes, rhs_axes, out_axes = einsum_axes(lhs.ndim, rhs.ndim, dimension_numbers)

    def gradient(other, other_axes, wanted_axes):
        spec = f"{out_axes},{other_axes}->{wanted_axes}"
        return jnp.einsum(spec, cotangent, other, precision=precision,
                          _dot_general=rounded_dot_general)

    def on_cpu(cotangent):
        return gradient(rhs, rhs_axes, lhs_axes), gradient(lhs, lhs_axes, rhs_axes)

    return jax.lax.platform_dependent(cotangent, cpu=on_cpu, default=transposed)


def einsum_axes(lhs_ndim, rhs_ndim, dimension_numbers):
    """``dot_general``'s ``dimension_numbers`` as einsum subscripts ``(lhs, rhs, out)``: the
    output is the batch axes, then the free axes of ``lhs``, then those of ``rhs``."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    lhs_letters, rhs_letters = [None] * lhs_ndim, [None] * rhs_ndim
    for lhs_axis, rhs_axis in zip((*lhs_batch, *lhs_contract), (*rhs_batch, *rhs_contract)):
        lhs_letters[lhs_axis] = rhs_letters[rhs_axis] = next(letters)
    lhs_free = [axis for axis in range(lhs_ndim) if lhs_letters[axis] is None]
    rhs_free = [axis for axis in range(rhs_ndim) if rhs_letters[axis] is None]
    for axis in lhs_free:
        lhs_letters[axis] = next(letters)
    for axis in rhs_free:
        rhs_letters[axis] = next(letters)
    out_letters = ([lhs_letters[axis] for axis in (*lhs_batch, *lhs_free)]
                   + [rhs_letters[axis] for axis in rhs_free])
    return "".join(lhs_letters), "".join(rhs_letters), "".join(out_letters)


_float32_output_product.defvjp(_keep_operands(_float32_output_product), _product_gradients)
_rounded_product.defvjp(_keep_operands(_rounded_product), _product_gradients)
