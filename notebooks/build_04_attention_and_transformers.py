"""Writes ``04_attention_and_transformers.ipynb`` next to this file, without outputs.

The notebook's cells live here as plain text, so a change to the notebook is a readable diff
of this file; ``tests/test_notebooks.py`` checks the committed cells are this script's
output. After editing a cell run ``python notebooks/build_04_attention_and_transformers.py``, then
``python notebooks/execute_notebook.py`` on the notebook to fill in its outputs.
"""

from pathlib import Path

import notebook_format  # notebooks/notebook_format.py, beside this file

NOTEBOOK_PATH = Path(__file__).with_name("04_attention_and_transformers.ipynb")

CELLS = [
    ("markdown", r"""
    # Attention and Transformers, from a soft lookup to a small GPT

    1. **attention** as a soft database lookup, $\mathrm{softmax}(QK^\top/\sqrt{d_k})\,V$, checked
       against one NumPy line;
    2. why the scores are divided by $\sqrt{d_k}$;
    3. the **causal mask** of a language model;
    4. **multi-head** attention;
    5. the residual **pre-LayerNorm block**;
    6. a small **GPT** trained on characters, one of its **attention maps**, and **samples**.

    Run it from the repository after `python -m pip install -e ".[test]"`. The sizes below come from
    environment variables so that `tests/test_notebooks.py` can run the whole notebook on a tiny
    budget.
    """),
    notebook_format.CHECKOUT_CELL,
    ("code", r"""
    import os
    import tempfile
    from pathlib import Path

    NUM_STEPS = int(os.environ.get("SEQJAX_NOTEBOOK_STEPS", 300))
    BATCH_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_BATCH_SIZE", 16))
    SEQ_LEN = int(os.environ.get("SEQJAX_NOTEBOOK_SEQ_LEN", 128))  # the GPT's context length
    WIDTH = int(os.environ.get("SEQJAX_NOTEBOOK_HIDDEN_SIZE", 128))  # residual stream width
    SAMPLE_TOKENS = int(os.environ.get("SEQJAX_NOTEBOOK_SAMPLE_TOKENS", 300))
    NUM_LAYERS = 2
    NUM_HEADS = 4
    LEARNING_RATE = 3e-3
    SEED = 0
    OUTPUT_DIR = Path(os.environ.get("SEQJAX_NOTEBOOK_OUTPUT_DIR",
                                     Path(tempfile.gettempdir()) / "seqjax_notebooks"))
    """),
    ("code", r"""
    import inspect
    import shutil

    import matplotlib

    matplotlib.use("Agg")  # write PNG files; works with or without a display
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    from IPython.display import Image, display

    from experiments.configs.defaults import base_config, transformer_model
    from seqjax.attention import (HeadsProjection, MergeHeadsProjection, MultiHeadSelfAttention,
                                  attend, attention_weights, causal_mask, exact_match_weights,
                                  multi_head_attention, scaled_dot_product_attention)
    from seqjax.data import resolve_data_dir
    from seqjax.generation import fed_length, generate, model_step_fn
    from seqjax.losses import nats_to_bits
    from seqjax.training.metrics_log import read_metrics
    from seqjax.models.transformer_lm import MLP, TransformerBlock
    from seqjax.text_generation import load_run
    from seqjax.training import train_and_evaluate

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    np.set_printoptions(precision=3, suppress=True)
    """),
    ("markdown", r"""
    ## 1. Attention is a soft database lookup

    A database lookup compares a query with every key and returns the value of the key that
    matches: weights $w_j \in \{0, 1\}$, answer $\sum_j w_j v_j$.
    """),
    ("code", r"""
    keys = jnp.array([3, 1, 4, 1, 5])
    values = jnp.array([10.0, 20.0, 30.0, 40.0, 50.0])
    weights = exact_match_weights(1, keys)
    print("weights:", weights, " answer:", attend(weights, values))  # 20 + 40: both keys match
    """),
    ("markdown", r"""
    Attention makes every step differentiable. Keys and queries are vectors, the match is the dot
    product $q \cdot k_j$, and a softmax turns the scores into weights that are positive and sum
    to one:

    $$w_j = \frac{\exp(q \cdot k_j / \sqrt{d_k})}{\sum_{j'} \exp(q \cdot k_{j'} / \sqrt{d_k})},
    \qquad \text{answer} = \sum_j w_j v_j .$$

    A query close to one key returns (almost) its value; a query between two keys returns a mix.
    """),
    ("code", r"""
    d_k = 4
    keys = 3.0 * np.eye(d_k)  # four orthogonal keys, one per row
    values = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # [T_k, d_v]
    for name, query in [("near key 0", keys[0]), ("between keys 1 and 2", (keys[1] + keys[2]) / 2)]:
        weights = attention_weights(jnp.asarray(query[None]), jnp.asarray(keys))[0]
        print(f"{name:22s} weights {weights}  answer {weights @ values}")
    """),
    ("markdown", r"""
    With $T_q$ queries stacked as the rows of $Q$ (and keys, values as the rows of $K$, $V$), all
    lookups are two matrix products:

    $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V,
    \qquad Q \in \mathbb{R}^{T_q \times d_k},\; K \in \mathbb{R}^{T_k \times d_k},\;
    V \in \mathbb{R}^{T_k \times d_v}.$$

    The equation in one line of NumPy, against seqjax's function:
    """),
    ("code", r"""
    def softmax(scores):
        exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)


    T_q, T_k, d_k, d_v = 3, 5, 8, 2
    Q, K, V = (rng.normal(size=shape) for shape in [(T_q, d_k), (T_k, d_k), (T_k, d_v)])

    out_numpy = softmax(Q @ K.T / np.sqrt(d_k)) @ V  # the equation
    out_seqjax = scaled_dot_product_attention(jnp.asarray(Q), jnp.asarray(K), jnp.asarray(V))
    np.testing.assert_allclose(out_seqjax, out_numpy, rtol=1e-5, atol=1e-6)
    print(out_numpy)
    print(inspect.getsource(scaled_dot_product_attention))
    """),
    ("markdown", r"""
    ## 2. Why divide by $\sqrt{d_k}$

    If the entries of $q$ and $k$ are independent with mean 0 and variance 1, then
    $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$ has variance $d_k$. Unscaled, the scores spread out as
    $d_k$ grows and the softmax **saturates**: one weight near 1, the rest near 0, and the
    gradient $\partial w_i / \partial s_j = w_i(\delta_{ij} - w_j)$ near 0. Dividing by
    $\sqrt{d_k}$ keeps the variance at 1 whatever the width. Here for 32 random keys:
    """),
    ("code", r"""
    head_dims = [4, 16, 64, 256, 1024]
    num_keys, num_trials = 32, 200
    largest_weight = {"unscaled": [], "scaled": []}
    print(" d_k   std(q.k)   mean max weight: unscaled   scaled")
    for head_dim in head_dims:
        q = rng.normal(size=(num_trials, 1, head_dim))
        k = rng.normal(size=(num_trials, num_keys, head_dim))
        scores = q @ k.transpose(0, 2, 1)  # [trials, 1, keys]
        for name, scale in [("unscaled", 1.0), ("scaled", 1 / np.sqrt(head_dim))]:
            largest_weight[name].append(softmax(scale * scores).max(axis=-1).mean())
        print(f"{head_dim:4d}   {scores.std():8.2f}   {largest_weight['unscaled'][-1]:24.3f}"
              f"   {largest_weight['scaled'][-1]:6.3f}")

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name, values in largest_weight.items():
        axis.plot(head_dims, values, "o-", label=name)
    axis.axhline(1 / num_keys, color="gray", linestyle="--", label="uniform, 1/T")
    axis.set(xscale="log", xlabel="$d_k$", ylabel="mean largest weight",
             title=f"softmax over {num_keys} random keys")
    axis.legend()
    figure.tight_layout()
    scaling_path = OUTPUT_DIR / "04_softmax_saturation.png"
    figure.savefig(scaling_path, dpi=100)
    plt.close(figure)
    display(Image(filename=str(scaling_path)))
    """),
    ("markdown", r"""
    ## 3. The causal mask

    In **self**-attention the queries, keys and values all come from the same sequence
    $x_1, \dots, x_T$. A language model predicts $x_{t+1}$ from $x_{\le t}$, so position $t$ may
    look only at keys $j \le t$. The mask sets the other scores to $-\infty$ before the softmax:

    $$w_{tj} = \frac{\exp(s_{tj})\,[j \le t]}{\sum_{j' \le t} \exp(s_{tj'})}.$$
    """),
    ("code", r"""
    T, d_k = 5, 8
    X = jnp.asarray(rng.normal(size=(T, d_k)))
    mask = causal_mask(T, T)
    print(np.asarray(mask).astype(int))
    print(attention_weights(X, X, mask))  # row t: where position t looks

    # The outputs before the last position do not change when the last token changes.
    X_changed = X.at[-1].set(rng.normal(size=d_k))
    before = scaled_dot_product_attention(X, X, X, mask)
    after = scaled_dot_product_attention(X_changed, X_changed, X_changed, mask)
    np.testing.assert_allclose(before[:-1], after[:-1], rtol=1e-6)
    print("positions 0..3 cannot see position 4")
    """),
    ("markdown", r"""
    ## 4. Multi-head attention

    One softmax gives each position one weighted average. $N$ heads look in $N$ ways at once:
    each head projects the width-$W$ input to its own queries, keys and values of size
    $d_h = W / N$, attends, and the heads' answers are concatenated and projected back:

    $$\mathrm{head}_n = \mathrm{Attention}(X W^Q_n, X W^K_n, X W^V_n), \qquad
    \mathrm{MultiHead}(X) = [\mathrm{head}_1, \dots, \mathrm{head}_N]\, W^O .$$

    seqjax keeps the heads on their own axis, `[B, T, N, d_h]`. Batched over heads, it must
    equal a loop over heads of the single-head function:
    """),
    ("code", r"""
    B, T, W, N = 1, 6, 8, 2
    x = jnp.asarray(rng.normal(size=(B, T, W)), jnp.float32)
    W_q, W_k, W_v = (rng.normal(size=(W, N, W // N)) for _ in range(3))
    q, k, v = (jnp.einsum("btw,wnh->btnh", x, P) for P in (W_q, W_k, W_v))  # [B, T, N, d_h]

    heads = multi_head_attention(q, k, v, causal=True)  # [B, T, N, d_h]
    for n in range(N):
        one_head = scaled_dot_product_attention(q[0, :, n], k[0, :, n], v[0, :, n],
                                                causal_mask(T, T))
        np.testing.assert_allclose(heads[0, :, n], one_head, rtol=1e-5, atol=1e-6)
    print("heads", heads.shape, "== a loop over heads; concatenated:", heads.reshape(B, T, W).shape)

    layer = MultiHeadSelfAttention(num_heads=N)  # the layer: projections W^Q, W^K, W^V, W^O
    layer_shapes = jax.eval_shape(layer.init, jax.random.PRNGKey(SEED), x)["params"]
    print(jax.tree.map(jnp.shape, layer_shapes))
    """),
    ("markdown", r"""
    ## 5. The residual pre-LayerNorm block

    A Transformer block adds two sub-layers to a **residual stream** $x$: attention, which moves
    information between positions, then a position-wise MLP
    $\mathrm{MLP}(u) = W_2\,\mathrm{GELU}(W_1 u + b_1) + b_2$ with hidden width $4W$. Each reads a
    LayerNorm of the stream (pre-LN, as GPT-2):

    $$x \leftarrow x + \mathrm{MultiHead}(\mathrm{LN}(x)), \qquad
    x \leftarrow x + \mathrm{MLP}(\mathrm{LN}(x)).$$

    The identity path lets gradients reach the bottom layers unchanged, as the LSTM's cell
    state does through time. seqjax's block, against those two lines built from its parts:
    """),
    ("code", r"""
    block = TransformerBlock(num_heads=N)
    shapes = jax.eval_shape(block.init, jax.random.PRNGKey(SEED), x)["params"]
    block_params = jax.tree.map(  # random values everywhere, LayerNorm scales and biases too
        lambda shape: jnp.asarray(rng.normal(scale=0.5, size=shape.shape), shape.dtype), shapes)
    print(jax.tree.map(jnp.shape, block_params))


    @jax.jit
    def block_outputs(block_params, x):  # -> (the library's block, the two lines by hand)
        def sub_layer(module, name, inputs):
            return module.apply({"params": block_params[name]}, inputs)

        layer_norm = nn.LayerNorm(epsilon=1e-5)
        h = x + sub_layer(MultiHeadSelfAttention(num_heads=N), "attention",
                          sub_layer(layer_norm, "attention_norm", x))
        by_hand = h + sub_layer(MLP(), "mlp", sub_layer(layer_norm, "mlp_norm", h))
        return block.apply({"params": block_params}, x), by_hand


    np.testing.assert_allclose(*block_outputs(block_params, x), rtol=1e-5, atol=1e-6)
    print("TransformerBlock == x + Attn(LN(x)), then x + MLP(LN(x))")
    """),
    ("markdown", r"""
    ## 6. A small GPT

    `TransformerLM` embeds each character, adds a learned embedding of its position (attention
    alone cannot tell order), runs `NUM_LAYERS` blocks, and reads the next-character logits
    from a final LayerNorm through the transposed token embedding. `train_and_evaluate` is
    the library's whole training job (AdamW with warmup and cosine decay, evaluation,
    checkpoints); the notebook only writes its config.

    The corpus is Tiny Shakespeare when it is in the data folder (`$SEQJAX_DATA_DIR`), otherwise
    the source code of Python's standard library.
    """),
    ("code", r"""
    has_shakespeare = (resolve_data_dir() / "tinyshakespeare.txt").is_file()
    corpus = "tiny_shakespeare" if has_shakespeare else "python_stdlib"

    config = base_config()
    config.data.corpus = corpus
    config.data.batching = "random"  # windows at random places, each one a fresh context
    config.model = transformer_model(num_layers=NUM_LAYERS, num_heads=NUM_HEADS, width=WIDTH)
    config.num_steps, config.batch_size, config.seq_len = NUM_STEPS, BATCH_SIZE, SEQ_LEN
    config.log_every = 1  # a training loss every step, for the curve
    config.eval_every = config.checkpoint_every = NUM_STEPS
    config.eval_batches = 8
    config.optim.learning_rate = LEARNING_RATE
    config.optim.end_learning_rate = LEARNING_RATE / 10
    config.optim.warmup_steps = max(1, NUM_STEPS // 10)
    config.progress_bar = False
    print(config.model)
    """),
    ("code", r"""
    workdir = OUTPUT_DIR / "04_gpt_run"
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run, not the resumption of an old one
    final = train_and_evaluate(config, workdir)

    train_losses = [record["train_loss"] for record in read_metrics(workdir)]
    last_window = min(10, NUM_STEPS)
    first_loss, last_loss = train_losses[0], float(np.mean(train_losses[-last_window:]))
    print(f"loss: first {first_loss:.4f} -> last {last_loss:.4f} "
          f"(nats/char; last = mean of the final {last_window} steps)")
    print(f"validation: {final['val_loss']:.3f} nats/char = {final['val_bits']:.3f} bits/char")

    run = load_run(workdir)  # the best checkpoint, its tokenizer and model, as sampling loads it
    num_parameters = sum(leaf.size for leaf in jax.tree.leaves(run.params))
    print(f"{num_parameters:,} parameters, vocabulary of {run.tokenizer.vocab_size}")
    """),
    ("code", r"""
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(np.arange(1, NUM_STEPS + 1), nats_to_bits(np.array(train_losses)),
              label="training batch")
    axis.axhline(nats_to_bits(final["val_loss"]), color="tab:orange", linestyle=":",
                 label="validation (end)")
    axis.axhline(nats_to_bits(np.log(run.tokenizer.vocab_size)), color="gray", linestyle="--",
                 label="uniform guess, log V")
    axis.set(xlabel="step", ylabel="bits / character",
             title=f"GPT, {NUM_LAYERS} layers x width {WIDTH}, on {corpus}")
    axis.legend()
    figure.tight_layout()
    loss_path = OUTPUT_DIR / "04_attention_and_transformers_loss.png"
    figure.savefig(loss_path, dpi=100)
    plt.close(figure)
    display(Image(filename=str(loss_path)))
    """),
    ("markdown", r"""
    ## 7. Where one head looks

    The model does not return its attention weights, but they are a function of what it does
    return: `capture_intermediates` records the LayerNorm output that enters a block's attention,
    and the block's query and key projections turn it into the weights
    $\mathrm{softmax}(QK^\top/\sqrt{d_h})$ of each head. Recomputing the attention output from
    those weights must give the model's own output, so the map below is the one the model used.
    Row $t$ is where position $t$ looks when it predicts character $t+1$.
    """),
    ("code", r"""
    LAYER, HEAD = NUM_LAYERS - 1, 0
    sample_text = ("ROMEO:\nBut soft, what light through yonder window breaks?" if has_shakespeare
                   else "    def __init__(self, name):\n        self.name = name")
    sample_text = sample_text[:min(SEQ_LEN, 48)]  # it must fit in the context
    tokens = jnp.asarray(run.tokenizer.encode(sample_text))[None, :]  # [1, T]


    @jax.jit
    def attention_maps(params, tokens):  # -> weights [1, N, T, T], recomputed, model's output
        _, captured = run.model.apply({"params": params}, tokens, capture_intermediates=True,
                                      mutable=["intermediates"])
        block_captured = captured["intermediates"][f"blocks_{LAYER}"]
        attention_input = block_captured["attention_norm"]["__call__"][0]  # [1, T, W]
        attention_params = params[f"blocks_{LAYER}"]["attention"]

        def project(name):  # [1, T, W] -> [1, N, T, d_h]
            heads = HeadsProjection(NUM_HEADS).apply({"params": attention_params[name]},
                                                     attention_input)
            return jnp.swapaxes(heads, 1, 2)

        length = tokens.shape[1]
        weights = attention_weights(project("query"), project("key"), causal_mask(length, length))
        heads = jnp.swapaxes(attend(weights, project("value")), 1, 2)  # [1, T, N, d_h]
        recomputed = MergeHeadsProjection().apply({"params": attention_params["output"]}, heads)
        return weights, recomputed, block_captured["attention"]["__call__"][0]


    maps, recomputed, model_output = attention_maps(run.params, tokens)
    np.testing.assert_allclose(recomputed, model_output, rtol=1e-4, atol=1e-5)
    print("attention maps", maps.shape, "reproduce the block's attention output")

    labels = ["\u2423" if char == " " else repr(char)[1:-1] for char in sample_text]  # open box = space
    figure, axis = plt.subplots(figsize=(8, 7))
    length = tokens.shape[1]
    image = axis.imshow(maps[0, HEAD], cmap="viridis", vmin=0.0)
    figure.colorbar(image, ax=axis, shrink=0.8, label="attention weight")
    axis.set_xticks(range(length), labels, fontsize=7, family="monospace")
    axis.set_yticks(range(length), labels, fontsize=7, family="monospace")
    axis.set(xlabel="key (attended character)", ylabel="query (current character)",
             title=f"layer {LAYER}, head {HEAD}")
    figure.tight_layout()
    map_path = OUTPUT_DIR / "04_attention_map.png"
    figure.savefig(map_path, dpi=100)
    plt.close(figure)
    display(Image(filename=str(map_path)))
    """),
    ("markdown", r"""
    ## 8. Samples

    Decoding feeds one character at a time through a **key/value cache**: each new position
    computes its own query, key and value and attends to the cached keys and values of all
    earlier positions, so a step costs $O(T)$ instead of rerunning the whole prefix. The GPT was
    trained on windows of `SEQ_LEN` characters, so past that the window slides: once the cache
    is full, it is rebuilt from the window's last half, with every kept character at its new
    position (`seqjax.models.transformer_lm.window_length` states the rule; keeping
    `SEQ_LEN - 1` characters is nanoGPT's crop to the last `SEQ_LEN`).

    The next character is drawn from $p_\tau(y) \propto \exp(z_y / \tau)$, the logits $z$
    divided by a temperature $\tau$: a low $\tau$ is conservative and repetitive, a high one
    inventive and noisy. Dividing the logits inside the step function makes $\tau$ an ordinary
    argument, so one compiled sampler serves every temperature
    (`seqjax.text_generation.continue_text(run, prompt, num_tokens, temperature=...)` is the
    one-call version; it compiles once per temperature).
    """),
    ("code", r"""
    prompt_text = "\n"  # start a line
    num_tokens = SAMPLE_TOKENS  # any number: the context window slides


    @jax.jit
    def sample(params, prompt, key, temperature):
        model_step = model_step_fn(run.model, {"params": params})

        def step_fn(state, token):
            logits, state = model_step(state, token)
            return logits / temperature, state

        state = run.model.init_decode_state(prompt.shape[0], fed_length(prompt.shape[1], num_tokens))
        return generate(step_fn, state, prompt, num_tokens, key)  # [B, num_tokens]


    prompt = jnp.asarray(run.tokenizer.encode(prompt_text))[None, :]  # [1, P]
    for temperature in (0.5, 1.0):
        tokens = sample(run.params, prompt, jax.random.PRNGKey(SEED), temperature)
        print(f"--- temperature {temperature} ---")
        print(prompt_text + run.tokenizer.decode(tokens[0]))
    """),
    ("markdown", r"""
    ## Where next

    - The run is saved in `OUTPUT_DIR/04_gpt_run`; sample it from the command line with
      `python -m experiments.sample --workdir=<that folder> --temperature=0.8`.
    - A larger GPT: `python -m experiments.train --config=experiments/configs/nanogpt_cpu.py
      --workdir=runs/nanogpt`.
    - `05_long_context.ipynb` asks whether a rotary Transformer uses a long context better
      than an LSTM of the same size, on BPE tokens of Python source.
    """),
]


def notebook_text():
    """The ``.ipynb`` file's exact contents."""
    return notebook_format.notebook_text(CELLS)


if __name__ == "__main__":
    notebook_format.write_notebook(NOTEBOOK_PATH, CELLS)
