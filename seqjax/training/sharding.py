"""Where the arrays of a training run live: a device mesh with axes ``data`` and ``fsdp``.

- The batch (and the recurrent carry of stream batching) is split along its first axis over
  both axes, ``PartitionSpec(("data", "fsdp"))``: every device holds ``B / (data * fsdp)`` rows.
- A parameter (and its optimizer moments) of at least ``min_size`` elements is split over
  ``fsdp`` along its largest axis that ``fsdp`` divides (fully sharded data parallelism); a
  smaller one, or one with no such axis, is replicated. With ``fsdp = 1`` (the default) every
  parameter is replicated: plain data parallelism.

``jax.jit`` with these shardings lets XLA insert the collectives: an all-reduce of the
gradients over ``data``, all-gathers of the ``fsdp`` shards before they are used.
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from seqjax.errors import ConfigError

MESH_AXES = ("data", "fsdp")
# config.mesh of a config without one: every device as data parallelism.
DEFAULT_MESH = {"data": -1, "fsdp": 1, "fsdp_min_size": 2**14}
BATCH_SPEC = PartitionSpec(MESH_AXES)


def mesh_shape(mesh_config, num_devices):
    """``(data, fsdp)`` from the config, a ``-1`` taking all remaining devices."""
    sizes = [mesh_config["data"], mesh_config["fsdp"]]
    if any(isinstance(s, bool) or not isinstance(s, int) or s == 0 or s < -1 for s in sizes):
        raise ConfigError(f"config.mesh.data and config.mesh.fsdp must be positive or -1 (all "
                          f"remaining devices), got {sizes[0]!r} and {sizes[1]!r}")
    if sizes.count(-1) > 1:
        raise ConfigError("only one of config.mesh.data and config.mesh.fsdp may be -1")
    known = int(np.prod([s for s in sizes if s != -1]))
    if num_devices % known:
        raise ConfigError(f"config.mesh asks for data={sizes[0]} x fsdp={sizes[1]} devices but "
                          f"there are {num_devices}: choose sizes whose product divides it")
    sizes = [num_devices // known if s == -1 else s for s in sizes]
    if sizes[0] * sizes[1] != num_devices:
        raise ConfigError(f"config.mesh data={sizes[0]} x fsdp={sizes[1]} must use all "
                          f"{num_devices} devices: set one of them to -1")
    return tuple(sizes)


def make_mesh(mesh_config, devices=None):
    """The run's ``Mesh`` over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(mesh_config, len(devices))
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)  # XLA propagates the shardings
    return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)


def batch_shards(mesh):
    """How many pieces a batch is cut into: ``data * fsdp``."""
    return mesh.shape["data"] * mesh.shape["fsdp"]


def replicated(mesh):
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh):
    """Rows of a batch over every device of the mesh."""
    return NamedSharding(mesh, BATCH_SPEC)


def parameter_spec(shape, fsdp_size, min_size):
    """The FSDP rule for one array: ``fsdp`` on its largest axis it divides, if big enough."""
    if fsdp_size == 1 or int(np.prod(shape)) < min_size:
        return PartitionSpec()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % fsdp_size == 0:
            return PartitionSpec(*([None] * axis + ["fsdp"]))
    return PartitionSpec()


def parameter_shardings(tree, mesh, min_size):
    """Shardings of a tree of parameters (or of optimizer state shaped like them)."""
    fsdp_size = mesh.shape["fsdp"]
    return jax.tree.map(
        lambda leaf: NamedSharding(mesh, parameter_spec(np.shape(leaf), fsdp_size, min_size)),
        tree,
    )


def state_shardings(state, mesh, min_size):
    """Shardings of a ``TrainState``: the FSDP rule for parameters and optimizer state, rows
    for the carry, the step replicated."""
    rows = batch_sharding(mesh)
    return state.replace(
        step=replicated(mesh),
        params=parameter_shardings(state.params, mesh, min_size),
        opt_state=parameter_shardings(state.opt_state, mesh, min_size),
        carry=jax.tree.map(lambda _: rows, state.carry),
    )


def process_rows(mesh, batch_size):
    """The rows of a global ``batch_size`` batch that this process's devices hold (a slice)."""
    indices = batch_sharding(mesh).addressable_devices_indices_map((batch_size,)).values()
    starts = sorted({index[0].start or 0 for index in indices})
    stop = max(index[0].stop or batch_size for index in indices)
    rows_per_device = batch_size // batch_shards(mesh)
    if stop - starts[0] != len(starts) * rows_per_device:
        raise ConfigError(
            f"process {jax.process_index()}'s devices are not neighbours in the mesh, so its "
            "rows of the batch are not one block: keep jax.devices()' order (the default mesh)"
        )
    return slice(starts[0], stop)


def global_batch(mesh, local_rows, batch_size):
    """The global, row-sharded ``batch_size`` batch from this process's rows (host arrays)."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, x, (batch_size,) + x.shape[1:]),
        local_rows,
    )


def host_value(array):
    """A replicated device value as a host NumPy value, in any process."""
    return np.asarray(array.addressable_shards[0].data)
