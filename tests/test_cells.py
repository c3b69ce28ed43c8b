"""Each cell's ``step`` against NumPy float64 references, Flax's cells and PyTorch's layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from seqjax.recurrent.cells import elman, get_cell, gru, lstm

INPUT, HIDDEN, STEPS = 3, 5, 4


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_elman(p, h, x):
    return np.tanh(p["W_h"] @ h + p["W_x"] @ x + p["b"])


def numpy_lstm(p, carry, x):
    h, c = carry
    H = h.shape[0]
    W, U, b = p["W_x"], p["W_h"], p["b"]
    gate = lambda k: W[k * H:(k + 1) * H] @ x + U[k * H:(k + 1) * H] @ h + b[k * H:(k + 1) * H]
    i, f, g, o = sigmoid(gate(0)), sigmoid(gate(1)), np.tanh(gate(2)), sigmoid(gate(3))
    c = f * c + i * g
    return np.tanh(c) * o, c


def numpy_gru(p, h, x, reset_after=True):
    H = h.shape[0]
    W, U, b = p["W_x"], p["W_h"], p["b"]
    rows = lambda M, k: M[k * H:(k + 1) * H]
    r = sigmoid(rows(W, 0) @ x + rows(b, 0) + rows(U, 0) @ h)
    u = sigmoid(rows(W, 1) @ x + rows(b, 1) + rows(U, 1) @ h)
    if reset_after:
        n = np.tanh(rows(W, 2) @ x + rows(b, 2) + r * (rows(U, 2) @ h + p["b_hn"]))
    else:
        n = np.tanh(rows(W, 2) @ x + rows(b, 2) + rows(U, 2) @ (r * h) + p["b_hn"])
    return (1 - u) * n + u * h


def random_params(cell, rng, dtype=np.float64):
    """The cell's own parameter structure, filled with random float64 values (biases too)."""
    shapes = jax.tree.map(jnp.shape, cell.init(jax.random.PRNGKey(0), INPUT, HIDDEN))
    return {k: rng.normal(0, 0.5, s).astype(dtype) for k, s in shapes.items()}


def run_steps(step, params, carry, xs):
    hs = []
    for x in xs:
        carry, h = step(params, carry, x)
        hs.append(h)
    return carry, np.stack(hs)


@pytest.mark.parametrize(
    "cell, reference",
    [(elman, numpy_elman), (gru, numpy_gru), (lstm, numpy_lstm)],
    ids=["elman", "gru", "lstm"],
)
def test_step_matches_numpy_reference(cell, reference, rng):
    params = random_params(cell, rng)
    xs = rng.normal(size=(STEPS, INPUT))
    h0 = rng.normal(size=HIDDEN)
    carry0 = (h0, rng.normal(size=HIDDEN)) if cell is lstm else h0
    with jax.enable_x64(True):
        jax_params = jax.tree.map(jnp.asarray, params)
        carry, hs = run_steps(jax.jit(cell.step), jax_params, jax.tree.map(jnp.asarray, carry0), xs)
        assert hs.dtype == np.float64
    np_carry, np_hs = carry0, []
    for x in xs:
        np_carry = reference(params, np_carry, x)
        np_hs.append(np_carry[0] if cell is lstm else np_carry)
    np.testing.assert_allclose(hs, np.stack(np_hs), rtol=1e-12, atol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12), carry, np_carry)


def test_gru_original_cho_candidate_matches_numpy(rng):
    params = random_params(gru, rng)
    x, h = rng.normal(size=INPUT), rng.normal(size=HIDDEN)
    with jax.enable_x64(True):
        _, out = gru.step(jax.tree.map(jnp.asarray, params), jnp.asarray(h), jnp.asarray(x), reset_after=False)
    np.testing.assert_allclose(out, numpy_gru(params, h, x, reset_after=False), rtol=1e-12)


def test_elman_without_bias_is_the_lecture_equation(rng):
    params = elman.init(jax.random.PRNGKey(1), INPUT, HIDDEN, use_bias=False)
    assert set(params) == {"W_h", "W_x"}
    x, h = jnp.asarray(rng.normal(size=INPUT), jnp.float32), jnp.ones(HIDDEN)
    _, out = elman.step(params, h, x)
    np.testing.assert_allclose(out, np.tanh(params["W_h"] @ h + params["W_x"] @ x), rtol=1e-6)


def test_initializers_and_carry_convention():
    p = lstm.init(jax.random.PRNGKey(0), INPUT, HIDDEN, forget_bias=1.0)
    assert p["W_h"].shape == (4 * HIDDEN, HIDDEN) and p["W_x"].shape == (4 * HIDDEN, INPUT)
    np.testing.assert_array_equal(p["b"].reshape(4, HIDDEN)[1], 1.0)  # forget gate, order i f g o
    np.testing.assert_array_equal(np.asarray(p["b"]).reshape(4, HIDDEN)[[0, 2, 3]], 0.0)
    for block in np.split(np.asarray(p["W_h"]), 4):  # orthogonal recurrent blocks
        np.testing.assert_allclose(block.T @ block, np.eye(HIDDEN), atol=1e-5)
    h, c = lstm.initial_carry(p, batch_shape=(2,))
    assert h.shape == c.shape == (2, HIDDEN)
    (h1, c1), out = lstm.step(p, lstm.initial_carry(p), jnp.ones(INPUT))
    np.testing.assert_array_equal(out, h1)  # carry is (h, c), hidden state first
    assert lstm.output((h1, c1)) is h1
    for cell in (elman, gru):
        q = cell.init(jax.random.PRNGKey(0), INPUT, HIDDEN)
        carry, out = cell.step(q, cell.initial_carry(q), jnp.ones(INPUT))
        np.testing.assert_array_equal(carry, out)


def test_step_is_vmappable_over_a_batch(rng):
    params = gru.init(jax.random.PRNGKey(0), INPUT, HIDDEN)
    xs = jnp.asarray(rng.normal(size=(7, INPUT)), jnp.float32)
    hs = jnp.asarray(rng.normal(size=(7, HIDDEN)), jnp.float32)
    batched, _ = jax.vmap(gru.step, in_axes=(None, 0, 0))(params, hs, xs)
    looped = np.stack([gru.step(params, h, x)[0] for h, x in zip(hs, xs)])
    np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-6)


def test_get_cell_names_the_choices():
    assert get_cell("lstm") is lstm
    with pytest.raises(ValueError, match="elman, gru, lru, lstm, min_gru, min_lstm, rg_lru"):
        get_cell("transformer")


# ---- Flax's built-in cells given the same weights -------------------------------------------


def flax_dense(W, b=None):
    """A flax Dense parameter dict computing ``W @ x + b`` (flax kernels are ``[in, out]``)."""
    return {"kernel": W.T} | ({"bias": b} if b is not None else {})


def elman_to_flax(p):
    return {"i": flax_dense(p["W_x"], p["b"]), "h": flax_dense(p["W_h"])}


def lstm_to_flax(p):
    H = p["W_h"].shape[1]
    rows = lambda M, k: M[k * H:(k + 1) * H]
    out = {}
    for k, gate in enumerate("ifgo"):
        out["i" + gate] = flax_dense(rows(p["W_x"], k))
        out["h" + gate] = flax_dense(rows(p["W_h"], k), rows(p["b"], k))
    return out


def gru_to_flax(p):
    H = p["W_h"].shape[1]
    rows = lambda M, k: M[k * H:(k + 1) * H]
    # Same layout as ours: input-side biases for r, u, n and a hidden-side bias for n only.
    return {
        "ir": flax_dense(rows(p["W_x"], 0), rows(p["b"], 0)), "hr": flax_dense(rows(p["W_h"], 0)),
        "iz": flax_dense(rows(p["W_x"], 1), rows(p["b"], 1)), "hz": flax_dense(rows(p["W_h"], 1)),
        "in": flax_dense(rows(p["W_x"], 2), rows(p["b"], 2)),
        "hn": flax_dense(rows(p["W_h"], 2), p["b_hn"]),
    }


@pytest.mark.parametrize(
    "cell, flax_cell, to_flax",
    [
        (elman, nn.SimpleCell, elman_to_flax),
        (lstm, nn.LSTMCell, lstm_to_flax),
        (lstm, nn.OptimizedLSTMCell, lstm_to_flax),
        (gru, nn.GRUCell, gru_to_flax),
    ],
    ids=["SimpleCell", "LSTMCell", "OptimizedLSTMCell", "GRUCell"],
)
def test_matches_flax_cell_given_same_weights(cell, flax_cell, to_flax, rng):
    params = jax.tree.map(jnp.asarray, random_params(cell, rng, np.float32))
    xs = jnp.asarray(rng.normal(size=(STEPS, 2, INPUT)), jnp.float32)
    module = flax_cell(features=HIDDEN)
    flax_params = {"params": to_flax(params)}
    ours = cell.initial_carry(params, (2,))
    theirs = module.initialize_carry(jax.random.PRNGKey(0), (2, INPUT))
    for x in xs:
        ours, h_ours = jax.vmap(cell.step, in_axes=(None, 0, 0))(params, ours, x)
        theirs, h_theirs = module.apply(flax_params, theirs, x)
        np.testing.assert_allclose(h_ours, h_theirs, rtol=1e-5, atol=1e-6)
    if cell is lstm:  # Flax orders the LSTM carry (c, h); ours is (h, c).
        np.testing.assert_allclose(ours[1], theirs[0], rtol=1e-5, atol=1e-6)


# ---- PyTorch's nn.RNN / nn.LSTM / nn.GRU given the same weights ----------------------------


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_matches_pytorch_given_same_weights(name, rng):
    torch = pytest.importorskip("torch")
    cell = get_cell(name)
    torch_layer = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name](
        INPUT, HIDDEN, batch_first=True
    ).double()
    weights = {k: v.detach().numpy() for k, v in torch_layer.named_parameters()}
    params = {
        "W_x": weights["weight_ih_l0"],
        "W_h": weights["weight_hh_l0"],
        "b": weights["bias_ih_l0"] + weights["bias_hh_l0"],
    }
    if name == "gru":  # the candidate's hidden bias sits inside r * (...), so it stays apart
        H = HIDDEN
        params["b"][2 * H:] = weights["bias_ih_l0"][2 * H:]
        params["b_hn"] = weights["bias_hh_l0"][2 * H:]
    xs = rng.normal(size=(2, STEPS, INPUT))
    torch_out, torch_final = torch_layer(torch.from_numpy(xs))
    with jax.enable_x64(True):
        params = jax.tree.map(jnp.asarray, params)
        carry = cell.initial_carry(params, (2,))
        hs = []
        for t in range(STEPS):
            carry, h = jax.vmap(cell.step, in_axes=(None, 0, 0))(params, carry, jnp.asarray(xs[:, t]))
            hs.append(h)
    np.testing.assert_allclose(np.stack(hs, 1), torch_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    if name == "lstm":
        np.testing.assert_allclose(carry[1], torch_final[1][0].detach().numpy(), rtol=1e-10)
