"""The same character-level model in each library, as timed benchmark candidates.

Model (identical everywhere): token embedding ``[V, I]`` -> one recurrent layer (Elman RNN,
LSTM or GRU, hidden size ``H``) -> dense read-out over ``V`` classes -> mean softmax
cross-entropy against the next tokens. A *training step* is forward + backward + one Adam
update; a *forward* pass is the loss alone. Contenders:

- ``seqjax``: :func:`seqjax.recurrent.fused_bptt.fused_unroll` (hand-written BPTT; on a CPU one
  ``[W_h W_x] [h; x]`` product per step, weight gradients per chunk of steps);
- ``baseline`` (with ``--baseline REV``): ``fused_unroll`` as it was at git revision ``REV``;
- ``scan``: the pure cell under ``jax.vmap(seqjax.recurrent.unroll.unroll)``, gradients by
  autodiff -- the plain ``lax.scan`` baseline the fused version replaces;
- ``flax``: ``flax.linen.RNN`` over ``SimpleCell`` / ``OptimizedLSTMCell`` / ``GRUCell``;
- ``torch``: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (oneDNN on CPU, cuDNN on a GPU).

Every builder takes ``(cell, shape, data)`` and returns ``{"train": Candidate,
"forward": Candidate}``; the batch is fixed so that only the model is timed. ``dtype=bfloat16``
is mixed precision (float32 parameters, matrix products in bfloat16): seqjax's and Flax's
``dtype``, PyTorch's forward pass and loss under ``torch.autocast``.
"""

import dataclasses
import functools
import pathlib
import subprocess
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.benchmarks.environment import torch_device
from experiments.benchmarks.timing import Candidate, torch_candidates
from seqjax.recurrent.cells import get_cell
from seqjax.recurrent.fused_bptt import fused_unroll
from seqjax.precision import einsum
from seqjax.recurrent.unroll import unroll
from seqjax.recurrent.layers import computing_in

LEARNING_RATE = 1e-3


class Unavailable(Exception):
    """A contender that cannot run on this machine (the message says why)."""


@dataclasses.dataclass(frozen=True)
class Shape:
    """Benchmark shape: batch ``B``, length ``T``, embedding (input) ``I``, hidden ``H``, vocab ``V``."""

    batch: int
    length: int
    input_size: int
    hidden_size: int
    vocab: int = 65

    @property
    def tokens(self):
        """Tokens processed per step, ``B * T``."""
        return self.batch * self.length

    def label(self):
        return f"B={self.batch} T={self.length} I={self.input_size} H={self.hidden_size}"


def random_batch(shape, seed=0):
    """``(inputs [B, T], targets [B, T])`` int32 tokens, the targets shifted by one."""
    tokens = np.random.default_rng(seed).integers(0, shape.vocab, (shape.batch, shape.length + 1))
    return tokens[:, :-1].astype(np.int32), tokens[:, 1:].astype(np.int32)


# ----------------------------------------------------------------------------- JAX shared


def _cross_entropy(logits, targets):
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def data_parallel_mesh():
    """A 1-D mesh ``("data",)`` over every device of JAX's default backend."""
    return jax.sharding.Mesh(np.array(jax.devices()), ("data",))


def _place(params, data, mesh):
    """Parameters replicated and the batch split over ``mesh`` (or left where they are)."""
    inputs, targets = (jnp.asarray(a) for a in data)
    if mesh is None:
        return params, inputs, targets
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    return jax.device_put(params, replicated), jax.device_put(inputs, split), jax.device_put(targets, split)


def _jax_candidates(name, loss_fn, params, data, mesh=None):
    """Jitted Adam training step and forward loss around ``loss_fn(params, inputs, targets)``.

    With a ``mesh`` the step is data-parallel: the batch is split over the mesh's devices
    (on a CPU, ``--xla_force_host_platform_device_count`` devices, one per core) and XLA
    inserts the gradient all-reduce.
    """
    optimizer = optax.adam(LEARNING_RATE)
    params, inputs, targets = _place(params, data, mesh)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, inputs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = {"params": params, "opt_state": optimizer.init(params)}

    def train_arguments():
        return state["params"], state["opt_state"], inputs, targets

    def train():
        state["params"], state["opt_state"], loss = train_step(*train_arguments())
        return state["params"], loss

    forward_loss = jax.jit(loss_fn)
    forward_arguments = (jax.tree.map(jnp.copy, params), inputs, targets)  # train donates its own
    return {
        "train": Candidate(name, train, program=train_step, arguments=train_arguments),
        "forward": Candidate(name, lambda: forward_loss(*forward_arguments),
                             program=forward_loss, arguments=lambda: forward_arguments),
    }


# ----------------------------------------------------------------------------- seqjax


def _seqjax_params(cell, shape, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    return {
        "embed": jax.random.normal(keys[0], (shape.vocab, shape.input_size)),
        "cell": get_cell(cell).init(keys[1], shape.input_size, shape.hidden_size),
        "dense": {
            "W": nn.initializers.lecun_normal()(keys[2], (shape.hidden_size, shape.vocab)),
            "b": jnp.zeros((shape.vocab,)),
        },
    }


def _seqjax_loss(recurrence, cell, dtype, params, inputs, targets):
    """Loss of the model with ``recurrence(params, xs [B, T, I], carry) -> (carry, hs)``; the
    read-out's product runs in ``dtype``."""
    xs = params["embed"][inputs]
    carry = get_cell(cell).initial_carry(params["cell"], (inputs.shape[0],))
    _, hs = recurrence(params["cell"], xs, carry)
    logits = einsum("bth,hv->btv", hs, params["dense"]["W"], dtype) + params["dense"]["b"]
    return _cross_entropy(logits, targets)


def seqjax_fused(cell, shape, data, *, unroll_steps=1, hoist_input_projection=None, gradient_chunk=16,
                 name="seqjax", mesh=None, dtype=jnp.float32):
    """seqjax's fast path: :func:`fused_unroll` with its hand-written BPTT."""
    recurrence = functools.partial(
        fused_unroll, cell, unroll=unroll_steps, hoist_input_projection=hoist_input_projection,
        gradient_chunk=gradient_chunk, compute_dtype=dtype,
    )
    loss_fn = functools.partial(_seqjax_loss, recurrence, cell, dtype)
    return _jax_candidates(name, loss_fn, _seqjax_params(cell, shape), data, mesh)


# Where the fused BPTT lived: its module moved into seqjax/recurrent/ (newest path first).
FUSED_BPTT_PATHS = ("seqjax/recurrent/fused_bptt.py", "seqjax/fused_recurrence.py")


def fused_recurrence_at(revision):
    """seqjax's fused BPTT module as it was at git ``revision``, loaded as a module."""
    root = pathlib.Path(__file__).resolve().parents[2]
    for path in FUSED_BPTT_PATHS:
        shown = subprocess.run(["git", "show", f"{revision}:{path}"], capture_output=True,
                               text=True, cwd=root)
        if not shown.returncode:
            break
    else:
        raise ValueError(f"cannot read {' or '.join(FUSED_BPTT_PATHS)} at revision "
                         f"{revision!r}: {shown.stderr.strip()}")
    module = types.ModuleType(f"fused_recurrence_at_{revision}")
    exec(compile(shown.stdout, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def seqjax_baseline(cell, shape, data, revision, *, mesh=None):
    """seqjax's fast path as it was at git ``revision``: the A/B baseline for a change to it."""
    recurrence = functools.partial(fused_recurrence_at(revision).fused_unroll, cell)
    loss_fn = functools.partial(_seqjax_loss, recurrence, cell, jnp.float32)
    return _jax_candidates("baseline", loss_fn, _seqjax_params(cell, shape), data, mesh)


def seqjax_scan(cell, shape, data, *, unroll_steps=1, mesh=None, dtype=jnp.float32):
    """The pure cell under ``vmap(lax.scan)``, differentiated by JAX: the baseline."""
    step = computing_in(dtype, get_cell(cell).step)

    def recurrence(params, xs, carry):
        return jax.vmap(lambda x, c: unroll(step, params, x, c, unroll=unroll_steps))(xs, carry)

    loss_fn = functools.partial(_seqjax_loss, recurrence, cell, dtype)
    return _jax_candidates("scan", loss_fn, _seqjax_params(cell, shape), data, mesh)


# ----------------------------------------------------------------------------- Flax


_FLAX_CELLS = {"elman": nn.SimpleCell, "lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


class FlaxLM(nn.Module):
    """Embedding -> ``nn.RNN(cell)`` -> Dense, Flax's built-in way, computing in ``dtype``."""

    cell: str
    shape: Shape
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs):
        xs = nn.Embed(self.shape.vocab, self.shape.input_size)(inputs)
        cell = _FLAX_CELLS[self.cell](features=self.shape.hidden_size, dtype=self.dtype)
        carry = None
        if self.cell == "elman":  # SimpleCell returns its carry in dtype: start it there
            carry = jnp.zeros((inputs.shape[0], self.shape.hidden_size), self.dtype)
        hs = nn.RNN(cell)(xs, initial_carry=carry)
        return nn.Dense(self.shape.vocab, dtype=self.dtype)(hs).astype(jnp.float32)


def flax_linen(cell, shape, data, *, mesh=None, dtype=jnp.float32):
    """Flax's built-in cell driven by ``flax.linen.RNN``."""
    model = FlaxLM(cell, shape, dtype)
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(data[0]))

    def loss_fn(params, inputs, targets):
        return _cross_entropy(model.apply(params, inputs), targets)

    return _jax_candidates("flax", loss_fn, params, data, mesh)


# ----------------------------------------------------------------------------- PyTorch


def torch_native(cell, shape, data, *, dtype=jnp.float32):
    """``torch.nn.RNN`` / ``LSTM`` / ``GRU`` with ``torch.optim.Adam`` (eager, as usually used)."""
    import torch

    device = torch_device()
    layer = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({
        "embed": torch.nn.Embedding(shape.vocab, shape.input_size),
        "rnn": layer(shape.input_size, shape.hidden_size, batch_first=True),
        "dense": torch.nn.Linear(shape.hidden_size, shape.vocab),
    }).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    inputs, targets = (torch.as_tensor(a, dtype=torch.long, device=device) for a in data)

    def loss_fn():
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                            enabled=dtype == jnp.bfloat16):
            hs, _ = model["rnn"](model["embed"](inputs))
            logits = model["dense"](hs)
            return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    if dtype != jnp.float32:
        try:  # oneDNN has no bfloat16 LSTM without the CPU's bfloat16 instructions
            with torch.no_grad():
                loss_fn()
        except RuntimeError as error:
            raise Unavailable(f"torch.{layer.__name__} under autocast(bfloat16): "
                              f"{str(error).splitlines()[0]}") from None

    return torch_candidates("torch", loss_fn, model, optimizer, device)
