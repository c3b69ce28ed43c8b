"""Elman's (1990) simple recurrent network: context units, trained one step at a time.

.. math::

    c_t = h_{t-1}, \\qquad c_1 = c_0 \\ (0.5 \\text{ for logistic units})

    h_t = f(W_x x_t + W_c c_t + b), \\qquad f = \\sigma \\text{ (Elman) or } \\tanh

    y_t = \\sigma(W_y h_t + b_y)

The context units hold a copy of the previous hidden state (fixed weights of 1). For learning,
Elman treated them as inputs like ``x_t``: the error of step ``t`` changes the weights through
``h_t`` and ``y_t`` only, its gradient stops at ``c_t = h_{t-1}`` (:func:`step_loss`).
:func:`window_loss` back-propagates through a window of steps instead (BPTT), for comparison.

Functions are of one example, unbatched (``jax.vmap`` them); ``activation`` (``"logistic"``
or ``"tanh"``) and ``loss`` (``"squared"`` or ``"cross_entropy"``) are names, static under
``jax.jit``. Parameters: ``{"W_x": [H, I], "W_c": [H, H], "b": [H], "W_y": [O, H],
"b_y": [O]}``. Unlike :mod:`seqjax.recurrent.cells.elman` (tanh, orthogonal ``W_h``, zero state, a
softmax read-out owned by the model), this is the 1990 network whole, read-out included.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax import simple_recurrent_network as srn
    >>> params = srn.init(jax.random.PRNGKey(0), input_size=1, hidden_size=2, output_size=1)
    >>> hiddens, predictions = srn.run(params, srn.start_state(2), jnp.ones((5, 1)))
    >>> hiddens.shape, predictions.shape
    ((5, 2), (5, 1))
"""

import jax
import jax.numpy as jnp
import optax

ACTIVATIONS = {"logistic": jax.nn.sigmoid, "tanh": jnp.tanh}
RESTING_STATE = {"logistic": 0.5, "tanh": 0.0}  # the middle of the unit's range


def init(key, input_size, hidden_size, output_size, weight_range=1.0, dtype=jnp.float32):
    """Every weight and bias uniform in ``[-weight_range, weight_range]`` (the rule of Elman's
    simulator tlearn, whose default range is 1)."""
    shapes = {"W_x": (hidden_size, input_size), "W_c": (hidden_size, hidden_size),
              "b": (hidden_size,), "W_y": (output_size, hidden_size), "b_y": (output_size,)}
    keys = jax.random.split(key, len(shapes))
    return {name: jax.random.uniform(k, shape, dtype, -weight_range, weight_range)
            for k, (name, shape) in zip(keys, shapes.items())}


def start_state(hidden_size, activation="logistic", dtype=jnp.float32):
    """The context before the first step, ``[H]``: 0.5 for logistic units (Elman), 0 for tanh."""
    return jnp.full((hidden_size,), RESTING_STATE[activation], dtype)


def hidden(params, context, x, activation="logistic"):
    """``h_t = f(W_x x_t + W_c c_t + b)``: ``context [H]``, ``x [I]`` -> ``[H]``."""
    net = params["W_x"] @ x + params["W_c"] @ context + params["b"]
    return ACTIVATIONS[activation](net)


def output_logit(params, h):
    """``W_y h_t + b_y``, ``[O]``: the output unit's net input (``y_t`` is its logistic)."""
    return params["W_y"] @ h + params["b_y"]


def squared_error(logit, target):
    """``(1/2) sum (y - target)^2`` with ``y = sigma(logit)`` (Elman's error)."""
    return 0.5 * jnp.sum((jax.nn.sigmoid(logit) - target) ** 2)


def cross_entropy(logit, target):
    """``-sum [target log y + (1 - target) log(1 - y)]`` with ``y = sigma(logit)``."""
    return jnp.sum(optax.sigmoid_binary_cross_entropy(logit, target))


LOSSES = {"squared": squared_error, "cross_entropy": cross_entropy}


def step_loss(params, context, x, target, activation="logistic", loss="squared"):
    """``(error of step t, h_t)`` with the context as a plain input: differentiating with
    respect to ``params`` gives Elman's one-step back-propagation (nothing flows into
    ``h_{t-1}``)."""
    h = hidden(params, jax.lax.stop_gradient(context), x, activation)
    return LOSSES[loss](output_logit(params, h), target), h


def window_loss(params, context, xs, targets, activation="logistic", loss="squared"):
    """``(summed error over the window, last h)`` for ``xs [T, I]``, ``targets [T, O]``, with
    the gradient flowing back through every ``c_t = h_{t-1}`` of the window (BPTT)."""

    def one_step(c, inputs):
        x, target = inputs
        h = hidden(params, c, x, activation)
        return h, LOSSES[loss](output_logit(params, h), target)

    last, losses = jax.lax.scan(one_step, context, (xs, targets))
    return losses.sum(), last


def run(params, context, xs, activation="logistic"):
    """``(hiddens [T, H], predictions y [T, O])`` over ``xs [T, I]`` from ``context``."""

    def one_step(c, x):
        h = hidden(params, c, x, activation)
        return h, (h, jax.nn.sigmoid(output_logit(params, h)))

    _, (hiddens, predictions) = jax.lax.scan(one_step, context, xs)
    return hiddens, predictions
