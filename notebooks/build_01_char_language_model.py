"""Writes ``01_char_language_model.ipynb`` next to this file, without outputs.

The notebook's cells live here as plain text, so a change to the notebook is a readable diff
of this file; ``tests/test_notebooks.py`` checks the committed cells are this script's
output. After editing a cell run ``python notebooks/build_01_char_language_model.py``, then
``python notebooks/execute_notebook.py`` on the notebook to fill in its outputs.
"""

from pathlib import Path

import notebook_format  # notebooks/notebook_format.py, beside this file

NOTEBOOK_PATH = Path(__file__).with_name("01_char_language_model.ipynb")

CELLS = [
    ("markdown", r"""
    # A character-level language model, from the equations to samples

    The lecture's recurrent network, built from seqjax's pieces one at a time:

    1. the **Elman cell** $h_t = \tanh(W_h h_{t-1} + W_x x_t + b)$, checked against one NumPy line;
    2. **unrolling** it over a sequence with `lax.scan`, and over a batch with `jax.vmap`;
    3. **back-propagation through time**, written by hand, against JAX's autodiff;
    4. a **character-level language model** trained by maximum likelihood for a few hundred steps;
    5. the **loss curve**, and **samples** from the trained model.

    Run it from the repository after `python -m pip install -e ".[test]"`. The sizes below come from
    environment variables so that `tests/test_notebooks.py` can run the whole notebook on a tiny
    budget.
    """),
    ("code", r"""
    import os
    import tempfile
    from pathlib import Path

    NUM_STEPS = int(os.environ.get("SEQJAX_NOTEBOOK_STEPS", 300))
    BATCH_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_BATCH_SIZE", 32))
    SEQ_LEN = int(os.environ.get("SEQJAX_NOTEBOOK_SEQ_LEN", 64))
    EMBED_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_EMBED_SIZE", 32))
    HIDDEN_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_HIDDEN_SIZE", 256))
    SAMPLE_TOKENS = int(os.environ.get("SEQJAX_NOTEBOOK_SAMPLE_TOKENS", 300))
    LEARNING_RATE = 3e-3
    SEED = 0
    OUTPUT_DIR = Path(os.environ.get("SEQJAX_NOTEBOOK_OUTPUT_DIR",
                                     Path(tempfile.gettempdir()) / "seqjax_notebooks"))
    """),
    ("code", r"""
    import functools
    import inspect
    import time

    import matplotlib

    matplotlib.use("Agg")  # write PNG files; works with or without a display
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    import optax
    from IPython.display import Image, display

    from seqjax.recurrent.cells import elman
    from seqjax.data import (build_tokenizer, eval_windows, load_corpus, random_windows,
                             resolve_data_dir, split_train_val)
    from seqjax.recurrent.fused_bptt import fused_unroll
    from seqjax.generation import generate, model_step_fn
    from seqjax.losses import mean_cross_entropy, nats_to_bits
    from seqjax.models.recurrent_lm import RecurrentLM
    from seqjax.recurrent.unroll import unroll
    """),
    ("markdown", r"""
    ## 1. The Elman cell

    $$h_t = \tanh(W_h h_{t-1} + W_x x_t + b), \qquad W_h \in \mathbb{R}^{H \times H},\;
    W_x \in \mathbb{R}^{H \times I},\; b \in \mathbb{R}^{H}$$

    In seqjax a cell is a pure function of **one** example: `step(params, carry, x) -> (carry, h)`.
    The carry comes first because that is what `jax.lax.scan` wants; for the Elman cell the carry
    *is* $h_t$. Here is the whole cell, next to the equation:
    """),
    ("code", r"""
    print(inspect.getsource(elman.step))
    """),
    ("markdown", r"""
    The parameters are a plain dict of arrays. One step of the library cell must equal the equation
    written as one line of NumPy:
    """),
    ("code", r"""
    input_size, hidden_size = 3, 4
    rng = np.random.default_rng(SEED)
    cell_params = elman.init(jax.random.PRNGKey(SEED), input_size, hidden_size)
    cell_params["b"] = jnp.asarray(rng.normal(size=hidden_size), jnp.float32)  # init gives b = 0
    print({name: value.shape for name, value in cell_params.items()})

    W_h, W_x, b = (np.asarray(cell_params[name], np.float64) for name in ("W_h", "W_x", "b"))
    h_prev = rng.normal(size=hidden_size).astype(np.float32)
    x = rng.normal(size=input_size).astype(np.float32)

    h_numpy = np.tanh(W_h @ h_prev + W_x @ x + b)  # the equation, in NumPy
    h_seqjax, _ = elman.step(cell_params, h_prev, x)  # the library
    np.testing.assert_allclose(h_seqjax, h_numpy, rtol=1e-5, atol=1e-6)
    print("NumPy :", h_numpy)
    print("seqjax:", np.asarray(h_seqjax))
    """),
    ("markdown", r"""
    ## 2. Unrolling over time, and over a batch

    A recurrent network applies the same step $T$ times, $h_1, \dots, h_T$, each step feeding its
    carry to the next. `seqjax.recurrent.unroll.unroll` does this with `jax.lax.scan`, which compiles the
    step once instead of $T$ times. It must agree with a Python loop:
    """),
    ("code", r"""
    num_steps = 5
    xs = rng.normal(size=(num_steps, input_size)).astype(np.float32)  # [T, I]
    final_h, hs = unroll(elman.step, cell_params, xs, elman.initial_carry(cell_params))
    print("hs:", hs.shape, " final carry:", final_h.shape)

    h, loop_hs = np.zeros(hidden_size), []
    for x_t in xs:
        h = np.tanh(W_h @ h + W_x @ x_t + b)
        loop_hs.append(h)
    np.testing.assert_allclose(hs, np.stack(loop_hs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final_h, hs[-1])
    print("scan == Python loop")
    """),
    ("markdown", r"""
    The cell and `unroll` see one sequence. A batch is `jax.vmap`: map over the leading axis of
    the inputs and the carries, share the parameters. Row $b$ of the batched result is exactly
    the unbatched run on row $b$.
    """),
    ("code", r"""
    batch_size = 2
    batch_xs = rng.normal(size=(batch_size, num_steps, input_size)).astype(np.float32)  # [B, T, I]
    batch_carry = elman.initial_carry(cell_params, (batch_size,))  # [B, H]


    def unroll_one(params, xs, carry):
        return unroll(elman.step, params, xs, carry)


    unroll_batch = jax.vmap(unroll_one, in_axes=(None, 0, 0))
    batch_final, batch_hs = unroll_batch(cell_params, batch_xs, batch_carry)
    print("batched hs:", batch_hs.shape)  # [B, T, H]
    for row in range(batch_size):
        _, row_hs = unroll_one(cell_params, batch_xs[row], batch_carry[row])
        np.testing.assert_allclose(batch_hs[row], row_hs, rtol=1e-6)
    print("vmap(unroll) == unroll on each row")
    """),
    ("markdown", r"""
    ## 3. Back-propagation through time, by hand

    `jax.grad` differentiates the scan for us. `seqjax.recurrent.fused_bptt.fused_unroll` computes the
    same forward pass but carries its own gradient, the lecture's BPTT: with $\bar h_t$ the
    gradient arriving at output $h_t$ from the loss,

    $$\frac{\partial L}{\partial h_t} = \bar h_t + W_h^\top \delta_{t+1}, \qquad
    \delta_t = \frac{\partial L}{\partial h_t} \odot (1 - h_t^2), \qquad
    \frac{\partial L}{\partial W_h} = \sum_t \delta_t h_{t-1}^\top, \quad
    \frac{\partial L}{\partial W_x} = \sum_t \delta_t x_t^\top, \quad
    \frac{\partial L}{\partial b} = \sum_t \delta_t .$$

    The backward loop runs only the first two equations; the weight gradients are then one big
    matrix product each. Both routes must give the same gradient:
    """),
    ("code", r"""
    def loss_autodiff(params):
        _, hs = unroll_batch(params, batch_xs, batch_carry)
        return jnp.sum(jnp.sin(hs))  # any scalar function of all outputs


    def loss_by_hand(params):
        _, hs = fused_unroll("elman", params, batch_xs, batch_carry)
        return jnp.sum(jnp.sin(hs))


    grads_autodiff = jax.grad(loss_autodiff)(cell_params)
    grads_by_hand = jax.grad(loss_by_hand)(cell_params)
    for name in grads_autodiff:
        np.testing.assert_allclose(grads_by_hand[name], grads_autodiff[name], rtol=1e-4, atol=1e-6)
        print(f"dL/d{name}: hand-written BPTT == autodiff")
    """),
    ("markdown", r"""
    ## 4. Data: characters to integers

    The corpus is Tiny Shakespeare when it is in the data folder (`$SEQJAX_DATA_DIR`), otherwise
    the source code of Python's standard library, which every machine has. The first 90% trains,
    the rest validates. The character vocabulary comes from the whole text, so that validation
    has no unknown characters.
    """),
    ("code", r"""
    has_shakespeare = (resolve_data_dir() / "tinyshakespeare.txt").is_file()
    corpus = "tiny_shakespeare" if has_shakespeare else "python_stdlib"
    text = load_corpus(corpus)
    train_text, val_text = split_train_val(text, train_fraction=0.9)
    tokenizer = build_tokenizer("char", text)
    train_tokens, val_tokens = tokenizer.encode(train_text), tokenizer.encode(val_text)
    print(f"{corpus}: {len(train_tokens):,} training / {len(val_tokens):,} validation characters, "
          f"vocabulary of {tokenizer.vocab_size}")
    print(repr(train_text[:120]))
    """),
    ("markdown", r"""
    A training batch is `BATCH_SIZE` windows of `SEQ_LEN + 1` characters at random places: the model
    reads `inputs = window[:-1]` and predicts `targets = window[1:]`, each character's successor.
    Batches are a pure function of `(seed, step)`, so a run is reproducible. (`stream_windows` gives
    contiguous windows instead, for carrying the hidden state from batch to batch, as
    `seqjax.training` does.)
    """),
    ("code", r"""
    def training_batch(step):
        return random_windows(train_tokens, batch_size=BATCH_SIZE, seq_len=SEQ_LEN,
                              seed=SEED, step=step)


    inputs, targets = training_batch(0)
    print("inputs", inputs.shape, inputs.dtype, " targets", targets.shape)
    print("input  :", repr(tokenizer.decode(inputs[0, :40])))
    print("target :", repr(tokenizer.decode(targets[0, :40])))
    """),
    ("markdown", r"""
    ## 5. The model

    $$x_t = E[y_t], \qquad h_t = \tanh(W_h h_{t-1} + W_x x_t + b), \qquad
    p(y_{t+1} \mid y_{\le t}) = \mathrm{softmax}(W_y h_t + b_y)$$

    `RecurrentLM` is an embedding, the cell above unrolled over `[B, T]` tokens (the fused BPTT
    path), and a linear read-out to one logit per character. Untrained, it should be about as
    unsure as a uniform guess: a loss near $\ln V$ nats per character.
    """),
    ("code", r"""
    model = RecurrentLM(vocab_size=tokenizer.vocab_size, cell="elman", embed_size=EMBED_SIZE,
                        hidden_size=HIDDEN_SIZE, num_layers=1, dropout=0.0, fused=True)
    params = model.init(jax.random.PRNGKey(SEED), inputs)["params"]
    print(jax.tree.map(jnp.shape, params))

    logits, _ = model.apply({"params": params}, inputs)  # [B, T, V]
    print("logits", logits.shape)
    print(f"untrained loss {float(mean_cross_entropy(logits, targets)):.3f} nats/char, "
          f"ln V = {np.log(tokenizer.vocab_size):.3f}")
    """),
    ("markdown", r"""
    ## 6. Training: maximum likelihood

    Maximum likelihood is minimising the average negative log-probability of each next character,

    $$\mathcal{L}(\theta) = -\frac{1}{BT} \sum_{b,t} \log p_\theta(y_{b,t+1} \mid y_{b,\le t})
    \quad \text{nats/char}, \qquad \text{bits/char} = \mathcal{L} / \ln 2 .$$

    One training step: the loss and its gradient (through the unrolled network, i.e. BPTT), then
    an Adam update. Gradients are clipped to global norm 1, the usual guard against the exploding
    gradients of a plain RNN. `jax.jit` compiles the step once; later steps reuse it.
    """),
    ("code", r"""
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(LEARNING_RATE))


    @jax.jit
    def train_step(params, opt_state, inputs, targets):
        def loss_fn(params):
            logits, _ = model.apply({"params": params}, inputs)
            return mean_cross_entropy(logits, targets)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    """),
    ("code", r"""
    opt_state = optimizer.init(params)
    losses = []
    start = time.perf_counter()
    for step in range(NUM_STEPS):
        inputs, targets = training_batch(step)
        params, opt_state, loss = train_step(params, opt_state, inputs, targets)
        losses.append(float(loss))
        if step % max(NUM_STEPS // 10, 1) == 0 or step == NUM_STEPS - 1:
            bits = nats_to_bits(losses[-1])
            print(f"step {step:4d}  loss {losses[-1]:.3f} nats/char  ({bits:.3f} bits)")
    seconds = time.perf_counter() - start

    last_window = min(10, NUM_STEPS)
    first_loss, last_loss = losses[0], float(np.mean(losses[-last_window:]))
    print(f"{NUM_STEPS} steps in {seconds:.1f} s")
    print(f"loss: first {first_loss:.4f} -> last {last_loss:.4f} "
          f"(nats/char; last = mean of the final {last_window} steps)")
    """),
    ("markdown", r"""
    The training loss is measured on the batch just trained on. The validation split, never seen,
    is the honest number. For scale: a model that ignores context and predicts the training
    split's character frequencies (a unigram model) would pay their entropy.
    """),
    ("code", r"""
    @jax.jit
    def eval_loss(params, inputs, targets):
        logits, _ = model.apply({"params": params}, inputs)
        return mean_cross_entropy(logits, targets)


    val_batches = eval_windows(val_tokens, batch_size=BATCH_SIZE, seq_len=SEQ_LEN, max_batches=8,
                               drop_remainder=True)
    val_loss = float(np.mean([eval_loss(params, inputs, targets) for inputs, targets in val_batches]))

    frequencies = np.bincount(train_tokens) / len(train_tokens)
    frequencies = frequencies[frequencies > 0]
    unigram_nats = float(-np.sum(frequencies * np.log(frequencies)))
    print(f"validation: {val_loss:.3f} nats/char = {nats_to_bits(val_loss):.3f} bits/char")
    print(f"unigram   : {unigram_nats:.3f} nats/char = {nats_to_bits(unigram_nats):.3f} bits/char")
    """),
    ("markdown", r"""
    ## 7. The loss curve
    """),
    ("code", r"""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(nats_to_bits(np.array(losses)), label="training batch")
    axis.axhline(nats_to_bits(unigram_nats), color="gray", linestyle="--", label="unigram entropy")
    axis.axhline(nats_to_bits(val_loss), color="tab:orange", linestyle=":", label="validation (end)")
    axis.set(xlabel="step", ylabel="bits / character", title=f"Elman RNN on {corpus}")
    axis.legend()
    figure.tight_layout()
    plot_path = OUTPUT_DIR / "01_char_language_model_loss.png"
    figure.savefig(plot_path, dpi=100)
    plt.close(figure)
    print("saved", plot_path)
    display(Image(filename=str(plot_path)))
    """),
    ("markdown", r"""
    ## 8. Sampling

    Generation runs the model one character at a time: feed the prompt, then repeatedly draw the
    next character from $\mathrm{softmax}(\text{logits} / \tau)$ and feed it back. The decoding state
    is just the RNN's carry. A low temperature $\tau$ is conservative and repetitive, a high one
    inventive and noisy.
    """),
    ("code", r"""
    @functools.partial(jax.jit, static_argnames=("num_tokens", "temperature"))
    def sample(params, prompt, key, num_tokens, temperature):
        state = model.init_decode_state(prompt.shape[0], prompt.shape[1] + num_tokens)
        step_fn = model_step_fn(model, {"params": params})
        return generate(step_fn, state, prompt, num_tokens, key, temperature=temperature)


    prompt_text = "ROMEO:\n" if corpus == "tiny_shakespeare" else "def "
    prompt = jnp.asarray(tokenizer.encode(prompt_text))[None, :]  # [1, P]
    for temperature in (0.5, 1.0):
        tokens = sample(params, prompt, jax.random.PRNGKey(SEED), SAMPLE_TOKENS, temperature)
        print(f"--- temperature {temperature} ---")
        print(prompt_text + tokenizer.decode(tokens[0]))
    """),
    ("markdown", r"""
    ## Where next

    - Train longer, or swap `cell="elman"` for `"lstm"` or `"gru"`: the model, the training step and
      the sampler do not change.
    - The full training loop (checkpoints, evaluation, carried hidden state across windows):
      `python -m experiments.train --config=experiments/configs/char_rnn.py --workdir=runs/char_rnn`.
    """),
]


def notebook_text():
    """The ``.ipynb`` file's exact contents."""
    return notebook_format.notebook_text(CELLS)


if __name__ == "__main__":
    notebook_format.write_notebook(NOTEBOOK_PATH, CELLS)
