"""Writes ``06_parallel_recurrences.ipynb`` next to this file, without outputs.

The notebook's cells live here as plain text, so a change to the notebook is a readable diff
of this file; ``tests/test_notebooks.py`` checks the committed cells are this script's
output. After editing a cell run ``python notebooks/build_06_parallel_recurrences.py``, then
``python notebooks/execute_notebook.py`` on the notebook to fill in its outputs.
"""

from pathlib import Path

import notebook_format  # notebooks/notebook_format.py, beside this file

NOTEBOOK_PATH = Path(__file__).with_name("06_parallel_recurrences.ipynb")

CELLS = [
    ("markdown", r"""
    # Recurrences that train in parallel over time

    A GRU or LSTM layer has to step through its sequence: $h_{t-1}$ enters step $t$ through a
    matrix and a nonlinearity, so step $t$ cannot start before step $t - 1$ has finished. A
    Transformer computes every position at once. Since 2023 several recurrences have closed
    much of that gap by being **linear in the state**. They train with a parallel (or chunked)
    scan over time, and they still generate one token at a time from a state of fixed size.
    seqjax has four of them (minGRU, minLSTM, LRU, RG-LRU) under the interface of its classic
    cells, and one scan engine with interchangeable back-ends
    (`seqjax/recurrent/linear_scan.py`, described in `docs/parallel_recurrences.md`).

    This notebook:

    1. works through why a recurrence linear in the state can be computed in $O(\log T)$ depth,
       first with four steps by hand in NumPy;
    2. gives the four cells' equations and the coefficients $(a_t, b_t)$ each hands to the scan;
    3. checks that every back-end computes what the step-by-step loop computes: outputs, final
       states, padded and reversed sequences, gradients;
    4. shows the price of the log-space form: its float32 error grows with the length;
    5. times one layer's forward and backward pass per token against the length, beside
       seqjax's fused GRU, on this machine;
    6. trains a small minGRU language model with the parallel scan, then generates from it one
       token at a time with the carried state.

    Run it from the repository after `python -m pip install -e ".[test]"`. The sizes below come
    from environment variables so that `tests/test_notebooks.py` can run the whole notebook on
    a tiny budget; the defaults take a few minutes on 2 CPU cores.
    """),
    notebook_format.CHECKOUT_CELL,
    ("code", r"""
    import os
    import tempfile
    from pathlib import Path

    SEQ_LEN = int(os.environ.get("SEQJAX_NOTEBOOK_SEQ_LEN", 128))  # T in sections 3 and 6
    SCAN_CELLS = os.environ.get("SEQJAX_NOTEBOOK_SCAN_CELLS", "min_gru,min_lstm,lru,rg_lru")
    SCAN_CELLS = SCAN_CELLS.split(",")  # the cells of the equality table (section 3)
    PRECISION_LENGTH = int(os.environ.get("SEQJAX_NOTEBOOK_PRECISION_LENGTH", 4096))  # section 4
    SCAN_LENGTHS = [int(length) for length in  # the lengths T timed in section 5
                    os.environ.get("SEQJAX_NOTEBOOK_SCAN_LENGTHS", "64,256,1024,4096").split(",")]
    TOKENS_PER_STEP = int(os.environ.get("SEQJAX_NOTEBOOK_SCAN_TOKENS", 8192))  # B * T, timed
    HIDDEN_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_HIDDEN_SIZE", 128))  # timed layer; the LM
    NUM_STEPS = int(os.environ.get("SEQJAX_NOTEBOOK_STEPS", 300))  # section 6: training steps
    BATCH_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_BATCH_SIZE", 32))
    EMBED_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_EMBED_SIZE", 32))
    SAMPLE_TOKENS = int(os.environ.get("SEQJAX_NOTEBOOK_SAMPLE_TOKENS", 300))
    CHUNK_SIZE = 16  # the chunked back-end in section 3: several chunks even in a short sequence
    TIMING_ROUNDS = 5  # section 5: each layer's time is the best of this many
    LEARNING_RATE = 3e-3
    SEED = 0
    OUTPUT_DIR = Path(os.environ.get("SEQJAX_NOTEBOOK_OUTPUT_DIR",
                                     Path(tempfile.gettempdir()) / "seqjax_notebooks"))
    """),
    ("code", r"""
    import functools
    import time

    import matplotlib

    matplotlib.use("Agg")  # write PNG files; works with or without a display
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    import optax
    from IPython.display import Image, display

    from experiments.benchmarks.environment import cpu_model
    from seqjax.data import (build_tokenizer, load_corpus, random_windows, resolve_data_dir,
                             split_train_val)
    from seqjax.generation import generate, model_step_fn
    from seqjax.losses import mean_cross_entropy
    from seqjax.models.recurrent_lm import RecurrentLM
    from seqjax.recurrent import linear_scan
    from seqjax.recurrent.cells import LINEAR_CELLS
    from seqjax.recurrent.layers import Recurrent
    from seqjax.recurrent.unroll import unroll

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)


    def show(figure, name):
        # Save the figure to OUTPUT_DIR and display it.
        figure.tight_layout()
        path = OUTPUT_DIR / name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        display(Image(filename=str(path)))
    """),
    ("markdown", r"""
    ## 1. The idea: a step is an affine map, and affine maps compose

    The recurrences of this notebook have the form

    $$h_t = a_t \odot h_{t-1} + b_t, \qquad a_t = a(x_t), \quad b_t = b(x_t),$$

    with $\odot$ the elementwise product: the coefficients depend on the input $x_t$ alone,
    never on $h_{t-1}$. So every step's $(a_t, b_t)$ can be computed at once, for the whole
    sequence, with one large matrix product. What remains sequential is the recurrence itself.

    Each step is the affine map $h \mapsto a h + b$, described by the pair $(a, b)$. Applying
    $(a, b)$ and then $(a', b')$ gives

    $$h \mapsto a'(a h + b) + b' = (a a')\, h + (a' b + b'), \qquad\text{so}\qquad
    (a, b) \bullet (a', b') = (a a',\; a' b + b').$$

    Two facts make this useful:

    - **The result has the same form.** Two steps combined are again one pair of size $2H$, so
      any stretch of steps, however long, is described by one pair.
    - **$\bullet$ is associative**, $(p \bullet q) \bullet r = p \bullet (q \bullet r)$,
      because composing functions is. The brackets can be placed anywhere.

    The state after $t$ steps is the prefix $(A_t, B_t) = e_1 \bullet e_2 \bullet \dots
    \bullet e_t$ of the steps $e_k = (a_k, b_k)$, applied to the initial state:
    $h_t = A_t h_0 + B_t$. All prefixes of an associative operator form a **scan**, and since
    the brackets are free, a scan need not run left to right. In the scheme of Hillis and
    Steele (1986), round $r = 0, 1, 2, \dots$ replaces every element $t > 2^r$ by
    $e_{t-2^r} \bullet e_t$ (all $t$ at once, from the previous round's values). After
    $\lceil \log_2 T \rceil$ rounds, position $t$ holds $e_1 \bullet \dots \bullet e_t$.
    The depth is $\lceil \log_2 T \rceil$ rounds instead of $T$ steps, for $T \log_2 T$
    combinations in all. `jax.lax.associative_scan` uses Blelloch's (1990) work-efficient
    variant: it combines neighbouring pairs, scans the half-length sequence recursively, then
    fills in the remaining positions. That is $O(T)$ combinations at about $2 \log_2 T$ depth.

    The classic cells cannot do this. In a GRU, $h_{t-1}$ passes through $W_h$ and a $\sigma$
    or $\tanh$, so two steps composed are a new nonlinear function of $h$ with no description
    of fixed size, and nothing can be combined before $h_{t-1}$ is known. A linear but dense
    recurrence $h_t = A_t h_{t-1} + b_t$ would compose, but each $\bullet$ would then multiply
    $H \times H$ matrices ($H^3$ work instead of $H$). That is why all four cells below keep
    $a_t$ diagonal.

    Four steps by hand, with $h_0 = 2$:
    """),
    ("code", r"""
    def combine(earlier, later):
        # (a, b) then (a', b'): h -> a'(a h + b) + b' = (a a') h + (a' b + b')
        a, b = earlier
        a_later, b_later = later
        return a * a_later, a_later * b + b_later


    a = np.array([0.5, 0.8, 0.25, 0.9])
    b = np.array([1.0, 2.0, 4.0, 0.5])
    h0 = 2.0

    h, by_loop = h0, []
    for a_t, b_t in zip(a, b):
        h = a_t * h + b_t
        by_loop.append(h)
    print("loop:  h_1..h_4 =", np.round(by_loop, 6))


    def hillis_steele(a, b, verbose=False):
        # All prefixes (A_t, B_t) in ceil(log2 T) rounds; each round is one vectorized combine.
        a, b = a.copy(), b.copy()
        offset = 1
        while offset < len(a):
            a[offset:], b[offset:] = combine((a[:-offset], b[:-offset]), (a[offset:], b[offset:]))
            if verbose:
                pairs = "  ".join(f"({a_t:.3g}, {b_t:.3g})" for a_t, b_t in zip(a, b))
                print(f"offset {offset}: (A_t, B_t) = {pairs}")
            offset *= 2
        return a, b


    A, B = hillis_steele(a, b, verbose=True)
    print("scan:  h_1..h_4 = A_t h_0 + B_t =", np.round(A * h0 + B, 6))
    jax_A, jax_B = jax.lax.associative_scan(combine, (jnp.asarray(a), jnp.asarray(b)))
    print("jax.lax.associative_scan (float32):", np.asarray(jax_A * h0 + jax_B))

    rng = np.random.default_rng(SEED)
    p, q, r = [(rng.uniform(size=3), rng.normal(size=3)) for _ in range(3)]
    left, right = combine(combine(p, q), r), combine(p, combine(q, r))
    print("associative: max |(p.q).r - p.(q.r)| =",
          max(np.max(np.abs(x - y)) for x, y in zip(left, right)))

    long_a, long_b = rng.uniform(size=1000), rng.normal(size=1000)  # T = 1000: 10 rounds
    h, long_loop = 0.0, []
    for a_t, b_t in zip(long_a, long_b):
        h = a_t * h + b_t
        long_loop.append(h)
    print("T = 1000, float64: max |scan - loop| =",
          np.max(np.abs(hillis_steele(long_a, long_b)[1] - long_loop)))
    """),
    ("markdown", r"""
    Check the second round by hand: position 4 combines position 2 of the first round,
    $(0.4, 2.8)$, with its own $(0.225, 4.1)$, giving
    $(0.4 \cdot 0.225,\ 0.225 \cdot 2.8 + 4.1) = (0.09, 4.73)$, and
    $h_4 = 0.09 \cdot 2 + 4.73 = 4.91$, as the loop says.

    ## 2. Four cells, four pairs $(a_t, b_t)$

    | cell | equations | $a_t$ | $b_t$ |
    |---|---|---|---|
    | **minGRU** (Feng et al. 2024) | $z_t = \sigma(W_z x_t + b_z)$, $\tilde h_t = g(W_h x_t + b_h)$, $h_t = (1 - z_t) h_{t-1} + z_t \tilde h_t$ | $1 - z_t$ | $z_t \tilde h_t$ |
    | **minLSTM** (Feng et al. 2024) | $f_t, i_t = \sigma(\cdot)$, $\tilde h_t = g(\cdot)$, $f'_t = \frac{f_t}{f_t + i_t}$, $i'_t = \frac{i_t}{f_t + i_t}$, $h_t = f'_t h_{t-1} + i'_t \tilde h_t$ | $f'_t$ | $i'_t \tilde h_t$ |
    | **LRU** (Orvieto et al. 2023) | $h_t = \lambda \odot h_{t-1} + \gamma \odot (B x_t)$, $y_t = \mathrm{Re}(C h_t) + D x_t$, $\lambda = e^{-e^{\nu} + i e^{\theta}}$ | $\lambda$ (complex, the same at every step) | $\gamma \odot B x_t$ |
    | **RG-LRU** (De et al. 2024) | $r_t, i_t = \sigma(\cdot)$, $a_t = a^{c r_t}$ with $a = \sigma(\Lambda)$, $c = 8$; $h_t = a_t h_{t-1} + \sqrt{1 - a_t^2}\, (i_t \odot x_t)$ | $a^{c r_t}$ | $\sqrt{1 - a_t^2}\, i_t x_t$ |

    - **minGRU** is the GRU with its reset gate removed and gates that read $x_t$ only.
      $g(v) = v + \tfrac12$ for $v \ge 0$ and $\sigma(v)$ otherwise keeps $\tilde h_t > 0$,
      so $a_t, b_t, h_t$ are all positive. That allows the paper's log-space scan (section 4).
    - **minLSTM** drops the LSTM's output gate, its cell state and $h_{t-1}$ in the gates. Its
      two gates are normalized to sum to 1, so the state's scale does not drift with $t$.
    - **LRU**: the state is complex and diagonal. $|\lambda| = e^{-e^{\nu}} < 1$ for every
      $\nu$, so the recurrence stays stable while it trains, and $\gamma$ starts at
      $\sqrt{1 - |\lambda|^2}$, which keeps the state's variance that of its input. Its
      output reads $x_t$ again through $D$, so the engine gets a `readout` besides $(a, b)$.
    - **RG-LRU** (Griffin and Hawk, the recurrence of recurrentgemma): the gate $r_t$ moves
      $a_t$ between $1$ and $a^c$, and $\sqrt{1 - a_t^2}$ plays the part of the LRU's
      $\gamma$, step by step.

    In seqjax each cell module has `coefficients(params, x) -> (a_t, b_t)` for one step, and
    its `step` is $a_t h_{t-1} + b_t$ (plus the LRU's read-out). One step of each, for an input
    of 3 and a state of 4:
    """),
    ("code", r"""
    np.set_printoptions(precision=3, suppress=True)
    key = jax.random.PRNGKey(SEED)
    x = jax.random.normal(key, (3,))
    one_step_params = {}
    for name, cell in LINEAR_CELLS.items():
        params = one_step_params[name] = cell.init(jax.random.fold_in(key, 1), 3, 4)
        zero = cell.initial_carry(params)
        h_prev = cell.state(zero) + 0.5  # some previous state
        a_t, b_t = cell.coefficients(params, x)
        carry, _ = cell.step(params, cell.carry_from(h_prev, cell.output(zero)), x)
        np.testing.assert_allclose(cell.state(carry), a_t * h_prev + b_t, rtol=1e-6, atol=1e-6)
        print(f"{name:8s} a_t = {np.asarray(a_t)}\n{'':8s} b_t = {np.asarray(b_t)}")
    print("each cell's step(h_prev, x) == a_t * h_prev + b_t")

    log_a, log_b = LINEAR_CELLS["min_gru"].log_coefficients(one_step_params["min_gru"], x)
    print("min_gru log_coefficients, exponentiated:", np.exp(log_a), np.exp(log_b))
    """),
    ("markdown", r"""
    (The last line: minGRU and minLSTM also give $\log a_t$ and $\log b_t$, computed without
    forming $a_t$ and $b_t$; exponentiated, they are the minGRU line above.)

    ## 3. The scan equals the loop

    `linear_scan.run(cell, params, xs, carry, seq_length=..., reverse=..., backend=...)` has
    the semantics of `unroll(cell.step, params, xs, carry, ...)`, the step-by-step
    `lax.scan` every classic cell runs on:

    - **sequential**: `jax.lax.scan` over the coefficients, one step after the other;
    - **associative**: `jax.lax.associative_scan` with the operator $\bullet$ of section 1;
    - **chunked**: the associative scan inside chunks (here of 16 steps, so that even a short
      sequence has several), all chunks at once; then a sequential pass over the chunks that
      carries the state in: within a chunk, $h = A\, h_\text{in} + s$, with $(A, s)$ the
      chunk's prefixes. The chunks bound the memory the associative scan needs, and only
      $T / 16$ steps are left in sequence;
    - **log** (minGRU and minLSTM only, whose $a, b, h$ are positive): Feng et al.'s log-space
      form, $\log h_t = A_t + \log\sum_{k \le t} e^{\log b_k - A_k}$ with
      $A_t = \sum_{k \le t} \log a_k$: one cumulative sum and one cumulative log-sum-exp.

    The table runs each cell with each of its back-ends and with `unroll(cell.step, ...)` on
    the same random batch of 4 sequences of `SEQ_LEN` steps, from a non-zero initial state
    (positive, for the log form), and prints the largest absolute difference of:

    - **outputs+carry**: all outputs and the final carry, full-length sequences;
    - **padded**: the same with lengths $T, T - 5, 1, 0$ (the steps past a length are the
      identity $a = 1, b = 0$; the final carry is the one at each sequence's own last step and
      the padded outputs are zero);
    - **reversed**: padded, run back to front over each sequence's valid part;
    - **gradient**: the gradient of a loss of the padded run (the mean of its outputs times
      fixed random weights, plus the mean square of the final state) with respect to the
      parameters, the inputs and the initial carry.
    """),
    ("code", r"""
    INPUT_SIZE, STATE_SIZE = 16, 32
    COLUMNS = ("outputs+carry", "padded", "reversed", "gradient")


    def by_loop(cell, params, xs, carry, **options):
        return unroll(cell.step, params, xs, carry, **options)


    def by_scan(backend, cell, params, xs, carry, **options):
        return linear_scan.run(cell, params, xs, carry, backend=backend, chunk_size=CHUNK_SIZE,
                               **options)


    def compared_results(run, cell, params, xs, carry, lengths, weights):
        # What the table compares, for a batch xs [B, T, I] from carries [B, ...].
        full = jax.vmap(lambda x, c: run(cell, params, x, c))(xs, carry)

        def padded(params, xs, carry, reverse=False):
            return jax.vmap(lambda x, c, n: run(cell, params, x, c, seq_length=n,
                                                reverse=reverse))(xs, carry, lengths)

        def loss(params, xs, carry):
            final, ys = padded(params, xs, carry)
            return jnp.mean(weights * ys) + jnp.mean(jnp.abs(cell.state(final)) ** 2), (final, ys)

        gradient, padded_run = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(params, xs, carry)
        return full, padded_run, padded(params, xs, carry, reverse=True), gradient


    def max_abs_difference(tree, reference):
        return max(np.max(np.abs(np.asarray(leaf) - np.asarray(expected)))
                   for leaf, expected in zip(jax.tree.leaves(tree), jax.tree.leaves(reference)))


    def backends_of(cell):
        return [backend for backend in linear_scan.BACKENDS
                if backend != "log" or hasattr(cell, "log_coefficients")]


    def random_problem(cell, seed):
        rng = np.random.default_rng(seed)
        params = cell.init(jax.random.PRNGKey(seed), INPUT_SIZE, STATE_SIZE)
        xs = rng.normal(size=(4, SEQ_LEN, INPUT_SIZE)).astype(np.float32)
        h0 = np.abs(rng.normal(size=(4, STATE_SIZE)))  # positive, for the log form
        state_dtype = cell.state(cell.initial_carry(params)).dtype  # complex64 for the LRU
        carry = cell.carry_from(h0.astype(state_dtype), np.full((4, STATE_SIZE), 0.5, np.float32))
        lengths = np.array([SEQ_LEN, SEQ_LEN - 5, 1, 0])
        weights = rng.normal(size=(SEQ_LEN, STATE_SIZE)).astype(np.float32)
        return params, xs, carry, lengths, weights


    start = time.perf_counter()
    differences, gradient_scale = {}, {}
    print(f"T = {SEQ_LEN}, batch of 4, input {INPUT_SIZE}, state {STATE_SIZE}; "
          "largest |back-end - step loop|:")
    print(f"{'cell':9s} {'back-end':12s}" + "".join(f"{column:>15s}" for column in COLUMNS))
    for index, name in enumerate(SCAN_CELLS):
        cell = LINEAR_CELLS[name]
        problem = random_problem(cell, index)
        reference = jax.jit(functools.partial(compared_results, by_loop, cell))(*problem)
        gradient_scale[name] = max(np.max(np.abs(leaf)) for leaf in jax.tree.leaves(reference[-1]))
        for backend in backends_of(cell):
            run = functools.partial(by_scan, backend)
            results = jax.jit(functools.partial(compared_results, run, cell))(*problem)
            differences[name, backend] = [max_abs_difference(result, expected)
                                          for result, expected in zip(results, reference)]
            print(f"{name:9s} {backend:12s}"
                  + "".join(f"{difference:15.1e}" for difference in differences[name, backend]))
    print("largest |gradient| entry: "
          + ", ".join(f"{name} {scale:.2g}" for name, scale in gradient_scale.items())
          + f" ({time.perf_counter() - start:.0f} s, most of it compiling)")
    """),
    ("markdown", r"""
    Every sequential, associative and chunked entry is at float32 rounding: about $10^{-7}$ to
    $10^{-6}$ on outputs of order 1, and up to about $10^{-5}$ on the LRU's gradients, whose
    entries reach about 3 (at the default sizes).
    The back-ends compute the same products and sums in other orders, which is the only source
    of a difference. Even the sequential back-end can differ from the loop by a rounding: it
    computes all coefficients with one matrix product over the $T$ inputs, where the loop
    computes them one step at a time. The log form is further off, by $10^{-5}$ to
    $3 \times 10^{-5}$ at $T = 128$. Section 4 shows where that comes from.

    `tests/test_linear_scan.py` runs the same comparison for every cell and back-end, forward
    and reversed, and also checks the gradients against central finite differences in float64.

    ## 4. The price of the log-space form

    The log form computes two large numbers and subtracts them. $A_t = \sum_{k \le t} \log a_k$
    grows in magnitude with $t$: at initialization $z_t \approx \tfrac12$, so
    $\log a_t \approx -0.7$ and $|A_{4096}| \approx 3000$. The log-sum-exp term
    $\log\sum_k e^{\log b_k - A_k}$ grows with it, and their sum $\log h_t$ is of order 1. A
    float32 number near 3000 is only known to about $3000 \times 2^{-24} \approx 2 \times
    10^{-4}$, and $\exp$ turns an absolute error in $\log h_t$ into the same relative error in
    $h_t$. So the log form's relative error should grow linearly with $|A_t|$, about
    $2^{-24} |A_t|$. The other back-ends only multiply numbers in $(0, 1)$ and add, and stay at
    float32 rounding at any length.

    Below, minGRU at initialization runs one batch of `PRECISION_LENGTH`-step sequences on
    every back-end, and each is compared with a float64 NumPy loop over the same float32
    coefficients. The error at length $T$ is the largest relative error
    $|h_t - h^{64}_t| / h^{64}_t$ over every $t \le T$, unit and sequence. (The sequential
    float32 back-end sits at about $10^{-7}$ of the float64 loop, so the log form's error
    relative to the sequential back-end is the same.)
    """),
    ("code", r"""
    cell = LINEAR_CELLS["min_gru"]
    params = cell.init(jax.random.PRNGKey(SEED), 64, 64)
    xs = jax.random.normal(jax.random.PRNGKey(SEED + 1), (4, PRECISION_LENGTH, 64))
    carry = cell.initial_carry(params, (4,))

    a, b = jax.jit(jax.vmap(jax.vmap(cell.coefficients, (None, 0)), (None, 0)))(params, xs)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    h, exact = np.zeros(a[:, 0].shape), np.empty(a.shape)  # the float64 loop
    for t in range(PRECISION_LENGTH):
        h = a[:, t] * h + b[:, t]
        exact[:, t] = h
    log_a_total = np.abs(np.cumsum(np.log(a), axis=1)).max(axis=(0, 2))  # max |A_t| at each t

    running_error = {}  # back-end -> [T]: the largest relative error up to each step
    for backend in linear_scan.BACKENDS:
        run = jax.jit(jax.vmap(functools.partial(linear_scan.run, cell, params, backend=backend)))
        _, hs = run(xs, carry)
        relative = np.abs(np.asarray(hs, np.float64) - exact) / exact
        running_error[backend] = np.maximum.accumulate(relative.max(axis=(0, 2)))

    unit_roundoff = np.finfo(np.float32).eps / 2  # 2^-24
    report_at = [length for length in (16, 64, 256, 1024, 4096, 16384)
                 if length <= PRECISION_LENGTH]
    print(f"{'T':>6s} {'max |A_t|':>10s} {'2^-24 |A_t|':>12s}"
          + "".join(f"{backend:>13s}" for backend in linear_scan.BACKENDS))
    for length in report_at:
        print(f"{length:6d} {log_a_total[length - 1]:10.0f} "
              f"{unit_roundoff * log_a_total[length - 1]:12.1e}"
              + "".join(f"{running_error[backend][length - 1]:13.1e}"
                        for backend in linear_scan.BACKENDS))

    steps = np.arange(1, PRECISION_LENGTH + 1)
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for (backend, error), style in zip(running_error.items(), ("-", "--", ":", "-")):
        axis.plot(steps, error, style, label=backend)  # associative and chunked coincide
    axis.plot(steps, unit_roundoff * log_a_total, "k--", lw=1, label=r"$2^{-24} \max|A_t|$")
    axis.set(xscale="log", yscale="log", xlabel="length T",
             ylabel="largest relative error up to T", title="minGRU in float32 vs a float64 loop")
    axis.legend(fontsize=8)
    show(figure, "06_log_space_error.png")
    """),
    ("markdown", r"""
    At the default length the log form's error runs parallel to the dashed black line,
    $2^{-24} \max |A_t|$, about 3 times above it: $8 \times 10^{-6}$ at $T = 64$,
    $1.5 \times 10^{-4}$ at $T = 1024$ and $6 \times 10^{-4}$ at $T = 4096$ (measured at the
    default sizes). That is harmless for training, but it is not rounding, and it is larger
    the faster the state forgets ($|\log a_t|$ large). A model that has learned long memory
    ($a_t \to 1$) accumulates $|A_t|$ more slowly. The other three back-ends stay at about
    $2 \times 10^{-7}$ at every length (the associative and chunked curves coincide). This
    is why `scan="auto"` never picks `log`: it is there to reproduce the paper's form.

    ## 5. Speed against the length

    What is timed: one recurrent layer, `seqjax.recurrent.layers.Recurrent`, of width $H$
    = `HIDDEN_SIZE` over standard-normal inputs `xs: [B, T, H]`, and
    `jax.value_and_grad` of `mean(hs ** 2)` with respect to its parameters and its inputs: a
    forward and a backward pass, without an optimizer. The number of tokens per step, $BT$,
    is fixed (`TOKENS_PER_STEP`), so the time per token compares across $T$. The contenders
    are minGRU on three back-ends and seqjax's classic GRU on its fused path (hand-written
    BPTT, `fused=True`), which is the reference. At equal $H$ the GRU has more parameters
    ($3H(2H + 1) + H$ against minGRU's $2H(H + 1)$) and, above all, a matrix product with
    $W_h$ inside every sequential step. The layers take turns, `TIMING_ROUNDS` times, and each
    one's best time is kept, because other processes may share the machine.
    """),
    ("code", r"""
    device = jax.devices()[0]
    hardware = cpu_model() if jax.default_backend() == "cpu" else device.device_kind
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"JAX {jax.__version__}, {jax.default_backend()}: {device.device_kind}; "
          f"CPU: {cpu_model()}, {os.cpu_count()} cores visible, load average {load:.1f}")

    LAYERS = {
        "minGRU sequential": Recurrent("min_gru", HIDDEN_SIZE, scan="sequential"),
        "minGRU associative": Recurrent("min_gru", HIDDEN_SIZE, scan="associative"),
        "minGRU chunked": Recurrent("min_gru", HIDDEN_SIZE, scan="chunked"),
        "GRU (fused)": Recurrent("gru", HIDDEN_SIZE, fused=True),
    }


    def compiled_training_step(layer, xs):
        # A function of no arguments running the layer's forward and backward pass on xs.
        params = jax.jit(layer.init)(jax.random.PRNGKey(SEED), xs[:1, :1])["params"]

        def loss(params, xs):
            _, hs = layer.apply({"params": params}, xs)
            return jnp.mean(hs ** 2)

        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        jax.block_until_ready(step(params, xs))  # compiles, and runs once
        return functools.partial(step, params, xs)


    def seconds(run):
        start = time.perf_counter()
        jax.block_until_ready(run())
        return time.perf_counter() - start


    start = time.perf_counter()
    microseconds_per_token = {name: [] for name in LAYERS}
    print(f"\nH = {HIDDEN_SIZE}, {TOKENS_PER_STEP:,} tokens a step; microseconds per token "
          f"(forward + backward), best of {TIMING_ROUNDS}:")
    print(f"{'T':>6s} {'B':>5s}" + "".join(f"{name:>20s}" for name in LAYERS)
          + f"{'best minGRU / GRU':>19s}  auto picks")
    for num_steps in SCAN_LENGTHS:
        batch_size = max(TOKENS_PER_STEP // num_steps, 1)
        xs = jax.random.normal(jax.random.PRNGKey(SEED), (batch_size, num_steps, HIDDEN_SIZE))
        steps = {name: compiled_training_step(layer, xs) for name, layer in LAYERS.items()}
        best = dict.fromkeys(steps, float("inf"))
        for _ in range(TIMING_ROUNDS):  # the layers take turns
            for name, run in steps.items():
                best[name] = min(best[name], seconds(run))
        for name in LAYERS:
            microseconds_per_token[name].append(1e6 * best[name] / (batch_size * num_steps))
        times = {name: values[-1] for name, values in microseconds_per_token.items()}
        fastest_min_gru = min(value for name, value in times.items() if name.startswith("minGRU"))
        auto = linear_scan.choose_backend(jax.default_backend(), num_steps, HIDDEN_SIZE)
        print(f"{num_steps:6d} {batch_size:5d}"
              + "".join(f"{value:20.2f}" for value in times.values())
              + f"{times['GRU (fused)'] / fastest_min_gru:18.2f}x  {auto}")
    print(f"({time.perf_counter() - start:.0f} s with compiling)")

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for name, values in microseconds_per_token.items():
        axis.plot(SCAN_LENGTHS, values, "o-", ms=4, label=name,
                  color="k" if name.startswith("GRU") else None)
    all_times = [value for values in microseconds_per_token.values() for value in values]
    y_ticks = sorted({float(f"{tick:.2g}")
                      for tick in np.geomspace(min(all_times), max(all_times), 5)})
    axis.set(xscale="log", yscale="log", xlabel="sequence length T",
             ylabel="microseconds per token", xticks=SCAN_LENGTHS, xticklabels=SCAN_LENGTHS,
             yticks=y_ticks, yticklabels=[f"{tick:g}" for tick in y_ticks],
             title=f"one layer, H = {HIDDEN_SIZE}, forward + backward, {hardware}")
    axis.minorticks_off()
    axis.legend(fontsize=8)
    show(figure, "06_speed_per_token.png")
    """),
    ("markdown", r"""
    The ratio column is the fused GRU's time over the fastest minGRU back-end's, and the last
    column is the back-end `scan="auto"` would choose there, from `AUTO_TABLE` in
    `linear_scan.py`.

    What to read from the curves, on a CPU:

    - **The associative scan does more work, and a CPU has no spare parallel units to absorb
      it.** A CPU with a few cores is already busy with the $B \times H$ independent
      recurrences of a batch, and the tree costs extra passes over memory. On 2 cores the
      sequential scan over the precomputed coefficients is usually the fastest minGRU
      back-end. That is what `auto` encodes for the CPU. On a GPU, where thousands of lanes
      wait, the depth $O(\log T)$ is what counts.
    - **minGRU beats the GRU mostly because its step is cheap, not because of the parallel
      scan.** All of minGRU's matrix products happen before the scan, as one large product
      over all $BT$ tokens. Inside the sequential loop only an elementwise multiply-add is
      left, while the GRU multiplies by $W_h$ at every step.
    - **minGRU's time per token is flat in $T$**, since its work per token does not depend on
      the length. The GRU's rises at the longest $T$: the batch is then small ($B = 2$ at
      $T = 4096$), and each of its $T$ sequential steps is a matrix product too small to keep
      the cores busy.
    - **The numbers are from a shared machine.** Other processes may be running, and the
      load average above says how busy it was. The best of several alternating rounds
      removes much of that noise, but not all of it.

    Two runs at the default sizes on 2 cores of an AMD EPYC, with other jobs running (load
    average 3 to 4), gave these ranges over both runs and every $T$ from 64 to 4,096, in
    microseconds per token:

    - minGRU: 8.2 to 9.8 on the sequential back-end, 10.6 to 13.8 on the associative one,
      10.3 to 15.3 on the chunked one;
    - the fused GRU: 11.6 to 18.7 up to $T = 1024$, and 22 to 25 at $T = 4096$.

    So minGRU's fastest back-end was 1.3 to 1.9 times ahead of the GRU up to $T = 1024$,
    and 2.7 to 2.9 times ahead at $T = 4096$. On a machine this busy, differences of 20%
    between two curves at one length are within the noise.

    The full measurement, with every cell and back-end, `auto`, the fused GRU and LSTM at
    equal width and at matched parameters, a Transformer block, and peak memory from the
    compiled program, is

    ```bash
    python -m experiments.benchmarks.parallel_scan
    ```

    Its tables and figures are in `docs/benchmarks.md`.

    ## 6. Train in parallel, generate one token at a time

    A character-level language model: an embedding, two minGRU layers and a softmax read-out
    (`RecurrentLM(cell="min_gru")`). It trains on windows with the **associative** scan over
    each whole window. It then generates with the **carried state**, feeding one token at a
    time through `decode_step`, as any RNN does. That needs $O(1)$ memory per token, where a
    Transformer needs a cache that grows with the context. The corpus is Tiny Shakespeare when
    it is in the data folder (`$SEQJAX_DATA_DIR`), else the standard library's source.
    """),
    ("code", r"""
    corpus = ("tiny_shakespeare" if (resolve_data_dir() / "tinyshakespeare.txt").is_file()
              else "python_stdlib")
    text = load_corpus(corpus)
    train_text, val_text = split_train_val(text, train_fraction=0.9)
    tokenizer = build_tokenizer("char", text)
    train_tokens = tokenizer.encode(train_text)

    model = RecurrentLM(vocab_size=tokenizer.vocab_size, cell="min_gru", embed_size=EMBED_SIZE,
                        hidden_size=HIDDEN_SIZE, num_layers=2, scan="associative")
    inputs, targets = random_windows(train_tokens, batch_size=BATCH_SIZE, seq_len=SEQ_LEN,
                                     seed=SEED, step=0)
    params = jax.jit(model.init)(jax.random.PRNGKey(SEED), inputs)["params"]
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(LEARNING_RATE))


    @jax.jit
    def train_step(params, opt_state, inputs, targets):
        def loss_fn(params):
            logits, _ = model.apply({"params": params}, inputs)
            return mean_cross_entropy(logits, targets)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss


    opt_state = optimizer.init(params)
    losses = []
    start = time.perf_counter()
    for step in range(NUM_STEPS):
        inputs, targets = random_windows(train_tokens, batch_size=BATCH_SIZE, seq_len=SEQ_LEN,
                                         seed=SEED, step=step)
        params, opt_state, loss = train_step(params, opt_state, inputs, targets)
        losses.append(float(loss))
    last_window = min(10, NUM_STEPS)
    print(f"{corpus}, vocabulary {tokenizer.vocab_size}: {NUM_STEPS} steps of {BATCH_SIZE} x "
          f"{SEQ_LEN} characters in {time.perf_counter() - start:.1f} s")
    print(f"loss: first {losses[0]:.4f} -> last {np.mean(losses[-last_window:]):.4f} "
          f"(nats/char; last = mean of the final {last_window} steps)")
    """),
    ("markdown", r"""
    The model saw whole windows during training. Now feed a validation text to it token by
    token, carrying the state, and compare each next-token distribution with the one the
    parallel pass over the whole text gives. They are the same function, computed in two
    orders. Then sample from it.
    """),
    ("code", r"""
    variables = {"params": params}
    step_fn = model_step_fn(model, variables)
    tokens = jnp.asarray(tokenizer.encode(val_text[:SEQ_LEN]))[None, :]  # [1, N]


    @jax.jit
    def token_by_token(tokens):
        def feed(state, token):
            logits, state = step_fn(state, token)
            return state, logits

        _, logits = jax.lax.scan(feed, model.init_decode_state(tokens.shape[0]), tokens.T)
        return logits.transpose(1, 0, 2)  # [B, N, V]


    parallel_logits, _ = jax.jit(model.apply)(variables, tokens)  # one associative scan per layer
    stepwise_logits = token_by_token(tokens)
    print(f"{tokens.shape[1]} tokens: max |logits carried state - logits parallel scan| = "
          f"{float(jnp.max(jnp.abs(stepwise_logits - parallel_logits))):.1e}; same argmax "
          f"everywhere: {bool(jnp.all(stepwise_logits.argmax(-1) == parallel_logits.argmax(-1)))}")


    @functools.partial(jax.jit, static_argnames="num_tokens")
    def sample(variables, prompt, key, num_tokens):
        step_fn = model_step_fn(model, variables)
        return generate(step_fn, model.init_decode_state(prompt.shape[0]), prompt, num_tokens,
                        key, temperature=0.8)


    prompt_text = "ROMEO:\n" if corpus == "tiny_shakespeare" else "def "
    prompt = jnp.asarray(tokenizer.encode(prompt_text))[None, :]
    sampled = sample(variables, prompt, jax.random.PRNGKey(SEED), SAMPLE_TOKENS)
    print("--- sample, temperature 0.8 ---")
    print(prompt_text + tokenizer.decode(sampled[0]))
    """),
    ("markdown", r"""
    ## Where next

    - `docs/parallel_recurrences.md`: the four cells, where seqjax departs from each paper,
      the scan engine's back-ends and `auto`, and the residual blocks (Hawk's recurrent block
      for `rg_lru`).
    - The speed measurement: `python -m experiments.benchmarks.parallel_scan`, with its
      results in `docs/benchmarks.md`.
    - The tests: `tests/test_linear_scan.py` (every back-end against the loop, gradients
      against float64 finite differences), `tests/test_linear_cells.py` (each cell against a
      NumPy transcription of its paper), and `tests/test_parallel_recurrences.py` (generation
      with the carried state, training and resuming, a sequence task).
    - Train any of them through the command-line tool by switching `model.kind` on a recurrent
      config (`min_gru`, `min_lstm`, `lru` or `rg_lru`; `--config.model.block=residual` for
      the papers' residual blocks). For example:

    ```bash
    python -m experiments.train --config=experiments/configs/char_gru.py --workdir=runs/min_gru \
        --config.model.kind=min_gru
    ```
    """),
]


def notebook_text():
    """The ``.ipynb`` file's exact contents."""
    return notebook_format.notebook_text(CELLS)


if __name__ == "__main__":
    notebook_format.write_notebook(NOTEBOOK_PATH, CELLS)
