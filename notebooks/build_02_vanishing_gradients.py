"""Writes ``02_vanishing_gradients.ipynb`` next to this file, without outputs.

The notebook's cells live here as plain text, so a change to the notebook is a readable diff
of this file; ``tests/test_notebooks.py`` checks the committed cells are this script's
output. After editing a cell run ``python notebooks/build_02_vanishing_gradients.py``, then
``python notebooks/execute_notebook.py`` on the notebook to fill in its outputs.
"""

from pathlib import Path

import notebook_format  # notebooks/notebook_format.py, beside this file

NOTEBOOK_PATH = Path(__file__).with_name("02_vanishing_gradients.ipynb")

CELLS = [
    ("markdown", r"""
    # Vanishing gradients: why a plain RNN forgets

    Back-propagation through time carries the loss at the last step $T$ back to step $k$ through
    one Jacobian per step in between:

    $$\frac{\partial L_T}{\partial W_h} = \sum_{k=1}^{T} \frac{\partial L_T}{\partial h_T}\,
    \frac{\partial h_T}{\partial h_k}\, \frac{\partial^+ h_k}{\partial W_h}, \qquad
    \frac{\partial h_T}{\partial h_k} = \prod_{t=k+1}^{T} \frac{\partial h_t}{\partial h_{t-1}},$$

    where $\partial^+ h_k / \partial W_h$ is the immediate dependence of step $k$ on $W_h$
    ($h_{k-1}$ held fixed). When every factor shrinks vectors, the product shrinks exponentially
    in $T - k$, and what happened early in a sequence can no longer change the weights.
    This notebook measures it with `seqjax.diagnostics`:

    1. one factor of the Elman cell, and its bound $\|W_h\|_2 \max|\tanh'|$;
    2. the linear recurrence $h_t = a h_{t-1} + x_t$, where the product is exactly $a^{T-k}$;
    3. $\|\partial h_T / \partial h_k\|$ of the Elman cell at $\sigma_{\max}(W_h) = 0.5, 1, 1.5$,
       beside the LSTM and the GRU;
    4. the BPTT sum above, term by term, by hand and by `jax.grad`;
    5. an Elman RNN and an LSTM trained on the adding problem, and their gradients after training.

    The sizes come from environment variables so that `tests/test_notebooks.py` can run the
    whole notebook on a tiny budget; the defaults take a few minutes on 2 CPU cores.
    """),
    notebook_format.CHECKOUT_CELL,
    ("code", r"""
    import os
    import tempfile
    from pathlib import Path

    NUM_STEPS = int(os.environ.get("SEQJAX_NOTEBOOK_STEPS", 300))  # training steps (section 5)
    BATCH_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_BATCH_SIZE", 32))
    SEQ_LEN = int(os.environ.get("SEQJAX_NOTEBOOK_SEQ_LEN", 50))  # T, the length of every sequence
    HIDDEN_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_HIDDEN_SIZE", 64))
    SEED = 0
    OUTPUT_DIR = Path(os.environ.get("SEQJAX_NOTEBOOK_OUTPUT_DIR",
                                     Path(tempfile.gettempdir()) / "seqjax_notebooks"))
    """),
    ("code", r"""
    import types

    import matplotlib

    matplotlib.use("Agg")  # write PNG files; works with or without a display
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    from IPython.display import Image, display

    from experiments.reproductions.long_range_memory import baseline, memory_task_config
    from seqjax import diagnostics
    from seqjax.recurrent.cells import elman, get_cell
    from seqjax.training import train_and_evaluate
    from seqjax.training.sequence_tasks import load_task_run
    from seqjax.tasks.memory import adding
    """),
    ("markdown", r"""
    ## 1. One factor of the product

    For the Elman cell $h_t = \tanh(a_t)$, $a_t = W_h h_{t-1} + W_x x_t + b$, the chain rule gives

    $$\frac{\partial h_t}{\partial h_{t-1}} = \mathrm{diag}(1 - h_t^2)\, W_h, \qquad
    \Big\|\frac{\partial h_t}{\partial h_{t-1}}\Big\|_2 \le \|W_h\|_2 \,\max_a |\tanh'(a)|
    = \sigma_{\max}(W_h),$$

    since $\tanh'(a) = 1 - \tanh^2(a) \in (0, 1]$. So
    $\|\partial h_T / \partial h_k\| \le \sigma_{\max}(W_h)^{T-k}$: with
    $\sigma_{\max}(W_h) < 1$ the gradient vanishes at least exponentially (Pascanu et al. 2013).
    The converse does not hold: $\sigma_{\max} > 1$ allows growth but saturated units
    ($|h| \to 1$, $\tanh' \to 0$) can still shrink the product. JAX's Jacobian of one step must
    be the formula, and its norm must respect the bound:
    """),
    ("code", r"""
    key_W_h, key_W_x, key_h, key_x = jax.random.split(jax.random.PRNGKey(SEED), 4)
    small = {"W_h": jax.random.normal(key_W_h, (4, 4)),  # 4 units, to print them
             "W_x": jax.random.normal(key_W_x, (4, 2)), "b": jnp.zeros(4)}
    small = diagnostics.with_recurrent_spectral_norm(small, 1.5)  # W_h rescaled: sigma_max = 1.5
    h_prev = jnp.tanh(jax.random.normal(key_h, (4,)))
    x = 2.0 * jax.random.normal(key_x, (2,))

    h_t, _ = elman.step(small, h_prev, x)
    one_step = jax.jacobian(lambda h: elman.step(small, h, x)[0])(h_prev)  # [H, H]
    np.testing.assert_allclose(one_step, (1 - h_t ** 2)[:, None] * small["W_h"], rtol=1e-5,
                               atol=1e-6)
    print("dh_t/dh_(t-1) == diag(1 - h_t^2) W_h")
    print("tanh'(a_t) = 1 - h_t^2 =", np.asarray(1 - h_t ** 2))
    sigma = float(diagnostics.largest_singular_value(small["W_h"]))
    step_norm = float(diagnostics.largest_singular_value(one_step))
    bound = sigma * float(jnp.max(1 - h_t ** 2))
    print(f"||dh_t/dh_(t-1)|| = {step_norm:.3f} <= sigma_max(W_h) max|tanh'| = {bound:.3f} "
          f"<= sigma_max(W_h) = {sigma:.3f}")
    """),
    ("markdown", r"""
    Units near saturation (small $\tanh'$) pull the step's Jacobian below the bound. seqjax
    initializes $W_h$ orthogonal: every singular value is 1, so at initialization only the
    $\tanh'$ factors shrink the product.

    ## 2. The linear recurrence: exactly $a^{T-k}$

    Without the nonlinearity, $h_t = a\, h_{t-1} + x_t$ has $\partial h_t / \partial h_{t-1} = aI$
    and $\partial h_T / \partial h_k = a^{T-k} I$, whatever the inputs. `seqjax.diagnostics`
    takes any object with a cell's `step`, `output` and `initial_carry`, so this cell is three
    lambdas, and its parameters are the number $a$. The measured norms must be exactly the
    powers:
    """),
    ("code", r"""
    linear_cell = types.SimpleNamespace(  # h_t = a h_{t-1} + x_t, 3 units; params = a
        step=lambda a, h, x: (a * h + x, a * h + x),
        output=lambda carry: carry,
        initial_carry=lambda a, batch_shape=(): jnp.zeros((*batch_shape, 3)),
    )
    linear_norms = jax.jit(lambda a, xs: diagnostics.jacobian_norms(linear_cell, a, xs))

    linear_xs = jax.random.normal(jax.random.PRNGKey(SEED), (2, SEQ_LEN, 3))  # [B, T, I]
    steps_back = SEQ_LEN - np.arange(1, SEQ_LEN + 1)  # T - k for k = 1..T
    for a in (0.9, 1.0, 1.1):
        norms = linear_norms(a, linear_xs)  # [B, T]
        np.testing.assert_allclose(norms, np.broadcast_to(a ** steps_back, norms.shape), rtol=1e-4)
        print(f"a = {a}: ||dh_T/dh_k|| at T-k = 0, 10, {SEQ_LEN - 1}: "
              f"{float(norms[0, -1]):.3g}, {float(norms[0, -11]):.3g}, {float(norms[0, 0]):.3g}"
              f"  (a^(T-k), exactly)")
    """),
    ("markdown", r"""
    ## 3. The Elman cell, the LSTM and the GRU

    Now the real cells, on sequences of the adding problem (section 5 trains on it): inputs
    $x_t = (v_t, m_t)$, a value and a marker. The Elman cell's $W_h$ is rescaled to
    $\sigma_{\max}(W_h) = 0.5, 1, 1.5$ (`with_recurrent_spectral_norm`); the LSTM (forget-gate
    bias 1) and the GRU are as initialized. `jacobian_norms` returns
    $\|\partial h_T/\partial h_k\|_2$ for every $k$ of every sequence; we average over the batch
    and plot against $T - k$. The dotted line is the bound $0.5^{T-k}$ of the first Elman cell.
    """),
    ("code", r"""
    task = adding(SEQ_LEN)
    batch = task.held_out_set(SEED, BATCH_SIZE)
    inputs, targets = jnp.asarray(batch.inputs), jnp.asarray(batch.targets)  # [B, T, 2], [B]
    print("adding-problem inputs", inputs.shape, " targets", targets.shape)

    jacobian_norms = jax.jit(diagnostics.jacobian_norms, static_argnums=0)  # compiled once per cell
    key = jax.random.PRNGKey(SEED)
    elman_params = elman.init(key, 2, HIDDEN_SIZE)
    curves = {}
    for sigma in (0.5, 1.0, 1.5):
        scaled = diagnostics.with_recurrent_spectral_norm(elman_params, sigma)
        curves[f"Elman, sigma_max(W_h) = {sigma:g}"] = jacobian_norms(elman, scaled, inputs)
    for name in ("lstm", "gru"):
        cell = get_cell(name)
        curves[name.upper()] = jacobian_norms(cell, cell.init(key, 2, HIDDEN_SIZE), inputs)
    # column k - 1 is T - k steps back; reversed, index i is i steps back
    mean_norms = {label: np.asarray(norms).mean(axis=0)[::-1] for label, norms in curves.items()}
    for label, norms in mean_norms.items():
        print(f"{label:28s} ||dh_T/dh_k|| at T-k = 1, 10, {SEQ_LEN - 1}: "
              f"{norms[1]:.2e}, {norms[10]:.2e}, {norms[-1]:.2e}")
    """),
    ("code", r"""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, norms in mean_norms.items():
        axis.plot(norms, label=label)
    axis.plot(0.5 ** np.arange(SEQ_LEN), color="tab:blue", linestyle=":", label="bound 0.5^(T-k)")
    axis.set(yscale="log", ylim=(1e-12, None), xlabel="T - k (steps back from the end)",
             ylabel="||dh_T / dh_k||", title=f"At initialization, H = {HIDDEN_SIZE}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    init_plot_path = OUTPUT_DIR / "02_vanishing_gradients_at_init.png"
    figure.savefig(init_plot_path, dpi=100)
    plt.close(figure)
    display(Image(filename=str(init_plot_path)))
    """),
    ("markdown", r"""
    What to read off: at $\sigma_{\max} = 0.5$ the Elman norm lies under its bound, a straight
    line on the log scale; at $\sigma_{\max} = 1$ it still decays, through the $\tanh'$ factors
    alone; at $\sigma_{\max} = 1.5$ it does not grow like $1.5^{T-k}$ but stays of order 1,
    because the states saturate.

    The gates have learned nothing yet. The LSTM's forget gate starts near
    $\sigma(1) \approx 0.73$ (its bias is 1), and its norm decays more slowly than the Elman
    cell's; the GRU's update gate starts near $\sigma(0) = 1/2$, and its norm decays about as
    fast. What a gate adds is a path that training can open: the LSTM's
    $c_t = f_t \odot c_{t-1} + i_t \odot g_t$ passes $c_{t-1}$ on multiplied by $f_t$ alone,
    with no $W_h$ and no $\tanh'$, and the GRU's $h_t = (1 - u_t) \odot n_t + u_t \odot h_{t-1}$
    passes $h_{t-1}$ on multiplied by $u_t$. With the gate at 1 that path is the identity.
    Section 5 trains the cells.

    ## 4. The BPTT sum, term by term

    The sum at the top has one term per step $k$. To get each term from `jax.grad`, give every
    step its own copy $W_h^{(k)}$ of the recurrent matrix: the loss is unchanged when all copies
    are equal, and $\partial L / \partial W_h^{(k)}$ is exactly term $k$. By hand
    (`diagnostics.elman_bptt_terms`), term $k$ is

    $$\frac{\partial L}{\partial a_k}\, h_{k-1}^\top, \qquad
    \frac{\partial L}{\partial a_k} = (1 - h_k^2) \odot
    \Big(\frac{\partial h_T}{\partial h_k}\Big)^{\!\top} \frac{\partial L}{\partial h_T},$$

    for a loss $L(h_T) = \tfrac12 \|h_T - y\|^2$ of the last state, so
    $\partial L / \partial h_T = h_T - y$.
    """),
    ("code", r"""
    params = elman_params  # the orthogonal initialization, sigma_max(W_h) = 1
    xs, target = inputs[0], jnp.full(HIDDEN_SIZE, 0.5)  # one sequence [T, 2], a target [H]
    h0 = elman.initial_carry(params)


    def loss_of_last_state(h_T):
        return 0.5 * jnp.sum((h_T - target) ** 2)


    def loss(W_h):  # the ordinary loss: one W_h shared by every step
        states = diagnostics.elman_hidden_states({**params, "W_h": W_h}, xs, h0)  # [T + 1, H]
        return loss_of_last_state(states[-1])


    def loss_with_one_W_h_per_step(W_hs):  # W_hs [T, H, H]: step k uses W_hs[k]
        def body(h, x_and_W_h):
            x, W_h = x_and_W_h
            h, _ = elman.step({**params, "W_h": W_h}, h, x)
            return h, None

        h_T, _ = jax.lax.scan(body, h0, (xs, W_hs))
        return loss_of_last_state(h_T)


    copies = jnp.stack([params["W_h"]] * SEQ_LEN)  # [T, H, H], all equal
    terms_autodiff = jax.jit(jax.grad(loss_with_one_W_h_per_step))(copies)
    h_T = diagnostics.elman_hidden_states(params, xs, h0)[-1]
    terms_by_hand = jax.jit(diagnostics.elman_bptt_terms)(params, xs, h_T - target)  # [T, H, H]
    grad_W_h = jax.jit(jax.grad(loss))(params["W_h"])
    print("terms:", terms_by_hand.shape)
    print(f"max |hand - jax.grad| over every term: "
          f"{float(jnp.max(jnp.abs(terms_by_hand - terms_autodiff))):.2e}")
    print(f"max |sum of the terms - dL/dW_h|: "
          f"{float(jnp.max(jnp.abs(terms_by_hand.sum(0) - grad_W_h))):.2e}")
    term_norms = np.linalg.norm(np.asarray(terms_by_hand), axis=(1, 2))[::-1]  # index = T - k
    print(f"||term|| at T-k = 0, 10, {SEQ_LEN - 2}: "
          f"{term_norms[0]:.2e}, {term_norms[10]:.2e}, {term_norms[-2]:.2e}")
    """),
    ("markdown", r"""
    The terms agree to float32 rounding, and their sum is the ordinary gradient. The last line is
    the vanishing gradient in the weights themselves: the terms of early steps are orders of
    magnitude smaller than those of the last steps, so the update to $W_h$ hardly depends on
    the beginning of the sequence.

    ## 5. After training: the adding problem

    Target: $v_{t_1} + v_{t_2}$, the sum of the two values whose marker is 1, one in each half of
    the sequence. The first marker is on average $3T/4$ steps before the end, so the gradient
    that would teach the model to keep it must cross that many Jacobians. Always predicting 1
    scores MSE $1/6$, the baseline to beat. We train an Elman RNN and an LSTM with
    `seqjax.training.train_and_evaluate`, the same loop as
    `python -m experiments.train --config=experiments/configs/tasks/adding.py:lstm`, on the
    budget above.
    """),
    ("code", r"""
    settings = {"num_steps": NUM_STEPS, "batch_size": BATCH_SIZE, "hidden_size": HIDDEN_SIZE,
                "eval_every": NUM_STEPS, "eval_examples": 4 * BATCH_SIZE}  # evaluate at the end
    runs_dir = Path(tempfile.mkdtemp(prefix="02_runs_", dir=OUTPUT_DIR))  # fresh: no resuming
    for name in ("elman", "lstm"):
        last = train_and_evaluate(memory_task_config("adding", name, SEQ_LEN, settings), runs_dir / name)
        print(f"{name:5s} T = {SEQ_LEN}: held-out MSE after {NUM_STEPS} steps "
              f"{last['val_loss']:.4f} (baseline {baseline('adding', SEQ_LEN):.4f})")
    """),
    ("markdown", r"""
    The trained model is an input projection (a Dense layer, 2 values to `embed_size`), the cell,
    and a linear head on the last state. To measure the trained cell we feed it the projected
    inputs and measure $\|\partial L_T / \partial h_k\|$ of the trained head's squared error,
    averaged over the batch of section 3.
    """),
    ("code", r"""
    loss_gradient_norms = jax.jit(diagnostics.loss_gradient_norms, static_argnums=(0, 3))
    trained = {}
    for name in ("elman", "lstm"):
        _, _, _, run_params = load_task_run(runs_dir / name)
        encoder, head = run_params["encoder"], run_params["head"]
        projection = encoder["input"]["project"]
        cell, cell_params = get_cell(name), encoder["layer_0"]["cell"]
        projected = inputs @ projection["kernel"] + projection["bias"]  # [B, T, embed_size]

        def squared_error(h_T):
            return jnp.mean((h_T @ head["kernel"][:, 0] + head["bias"][0] - targets) ** 2)

        norms = loss_gradient_norms(cell, cell_params, projected, squared_error)  # [B, T]
        trained[name] = np.asarray(norms).mean(axis=0)[::-1]  # index = T - k
        print(f"{name:5s} ||dL/dh_k|| at T-k = 0, {SEQ_LEN - 1}: {trained[name][0]:.2e}, "
              f"{trained[name][-1]:.2e} (ratio {trained[name][-1] / trained[name][0]:.1e})")
        if name == "elman":
            sigma = float(diagnostics.largest_singular_value(cell_params["W_h"]))
            print(f"      trained sigma_max(W_h) = {sigma:.2f} (initialized at 1)")
    """),
    ("code", r"""
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, norms in trained.items():
        axis.plot(norms, label=name.capitalize() if name == "elman" else name.upper())
    axis.axvline(3 * SEQ_LEN / 4, color="gray", linestyle=":", label="first marker, on average")
    axis.set(yscale="log", xlabel="T - k (steps back from the end)", ylabel="||dL_T / dh_k||",
             title=f"trained on adding, T = {SEQ_LEN}, {NUM_STEPS} steps")
    axis.legend()
    figure.tight_layout()
    trained_plot_path = OUTPUT_DIR / "02_vanishing_gradients_trained.png"
    figure.savefig(trained_plot_path, dpi=100)
    plt.close(figure)
    display(Image(filename=str(trained_plot_path)))
    """),
    ("markdown", r"""
    This is what the optimizer sees: how strongly the loss responds to the state at step $k$.
    Where it has fallen by orders of magnitude before $T - k$ reaches the first marker (on
    average $3T/4$ back), the model cannot learn to keep that value. On the default budget
    the Elman RNN's falls by over ten orders of magnitude across the sequence and its MSE stays
    near the baseline; the LSTM's levels off within about one order of magnitude, and its MSE
    falls far below. Training also raised the Elman cell's $\sigma_{\max}(W_h)$ above 1,
    where the bound allows growth, and its gradient vanishes all the same: saturated units
    supply the small $\tanh'$ factors.

    ## Where next

    - The measured version, at $T = 100$ with the committed figures:
      `python -m experiments.reproductions.vanishing_gradients --workdir=runs/vanishing`
      (see [the reproductions](../docs/reproductions.md)).
    - Notebook 03 trains all four model families on the adding and copy-memory problems
      against their memoryless baselines.
    """),
]


def notebook_text():
    """The ``.ipynb`` file's exact contents."""
    return notebook_format.notebook_text(CELLS)


if __name__ == "__main__":
    notebook_format.write_notebook(NOTEBOOK_PATH, CELLS)
