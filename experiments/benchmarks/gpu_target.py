"""Compiling for a GPU this machine does not have: a compile-only JAX device from a description.

JAX's CUDA plugin (``pip install "jax[cuda13]"``; no GPU or driver needed) builds a compile-only
device from an XLA ``GpuTargetConfigProto`` in text form (``gpu_targets/*.txtpb``), as JAX's
ahead-of-time API does for a TPU topology. A jitted function traced with arguments that are
:func:`abstract_on` that device compiles with XLA:GPU's passes, code generation and ``ptxas``
for that card; what needs the card itself (autotuning, cuDNN) is left out.
"""

import os

import jax

TARGETS_DIR = os.path.join(os.path.dirname(__file__), "gpu_targets")

SKIP_CUDA_CHECK = "JAX_SKIP_CUDA_CONSTRAINTS_CHECK"  # the CUDA plugin's driver check, off with no GPU
NO_CUDA_PLUGIN = ("--gpu-target needs JAX's CUDA plugin, which is not installed here: "
                  'pip install "jax[cuda13]" (no GPU needed)')


def cuda_plugin_installed():
    """Whether JAX's CUDA plugin is importable (without starting a backend)."""
    import importlib.util

    return importlib.util.find_spec("jax_plugins") is not None and any(
        importlib.util.find_spec(f"jax_plugins.xla_cuda{version}") for version in (12, 13))


def compile_only_gpu(target_config_path):
    """A compile-only JAX device for the GPU that ``target_config_path`` describes (an XLA
    ``GpuTargetConfigProto`` in text form), from JAX's CUDA plugin; no GPU needed."""
    from jax.experimental import topologies

    with open(target_config_path) as file:
        target_config = file.read()
    try:
        topology = topologies.get_topology_desc(platform="cuda", topology="1x1x1",
                                                target_config=target_config)
    except NotImplementedError as error:
        raise RuntimeError(f"{NO_CUDA_PLUGIN} ({error})") from None
    except jax.errors.JaxRuntimeError as error:
        raise RuntimeError(f"--gpu-target {target_config_path}: the CUDA plugin refused it: "
                           f"{str(error).splitlines()[0]}") from None
    return topology.devices[0]


def cuda_plugin_version():
    """``"jax-cuda13-plugin 0.10.2"``, say: the installed CUDA plugin that compiles for a target."""
    from importlib import metadata

    for name in ("jax-cuda13-plugin", "jax-cuda12-plugin"):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "CUDA plugin of unknown version"


def abstract_on(device):
    """``place`` for :meth:`Candidate.trace`: every argument as a shape and dtype on ``device``."""
    sharding = jax.sharding.SingleDeviceSharding(device)

    def place(arguments):
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(
            jax.numpy.shape(a), jax.numpy.result_type(a), sharding=sharding,
            weak_type=getattr(a, "weak_type", False)), arguments)

    return place
