"""What a benchmark ran on: device, library versions, flags and machine load.

Recorded next to every figure so that numbers from different machines, library versions
or ``XLA_FLAGS`` are never compared by accident.
"""

import importlib.metadata
import os
import platform
import time

import jax

from experiments.jemalloc import running_malloc

_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy", "torch")


def library_versions():
    """``{name: version}`` for the libraries a benchmark may use (None when missing)."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_average():
    """1-, 5- and 15-minute load averages, or None where the OS has none."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def cpu_busy_fraction(interval_s=0.5):
    """Fraction of all CPU time spent busy over the next ``interval_s`` (None off Linux)."""
    def read():
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    try:
        total_0, idle_0 = read()
        time.sleep(interval_s)
        total_1, idle_1 = read()
    except OSError:
        return None
    return 1.0 - (idle_1 - idle_0) / max(total_1 - total_0, 1)


def wait_for_idle_cpu(max_busy=0.1, timeout_s=120.0):
    """Block until other processes leave the CPUs idle (busy <= ``max_busy``) or ``timeout_s``.

    Called between timing rounds on a shared machine (we are idle then, so what is busy is
    someone else). Returns the last busy fraction seen.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        busy = cpu_busy_fraction()
        if busy is None or busy <= max_busy or time.monotonic() > deadline:
            return busy


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what fast paths need


def cpu_details():
    """Family, model and the vector extensions of note from ``/proc/cpuinfo`` (the model
    name alone does not tell an AVX2 EPYC from an AVX-512 one); empty elsewhere."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key in ("cpu family", "model", "flags") and key not in fields:
                    fields[key] = value
                if len(fields) == 3:
                    break
    except OSError:
        return {}
    flags = set(fields.get("flags", "").split())
    return {"family": fields.get("cpu family"), "model": fields.get("model"),
            "isa": [flag for flag in ISA_FLAGS if flag in flags]}


def torch_device():
    """PyTorch's device matching JAX's backend (``"cpu"`` / ``"cuda"``), or None where torch is
    not installed or has no counterpart (a TPU, a GPU torch cannot see)."""
    try:
        import torch
    except ImportError:
        return None
    backend = jax.default_backend()
    if backend == "cpu":
        return "cpu"
    if backend == "gpu" and torch.cuda.is_available():
        return "cuda"
    return None


def set_float32_matmul_precision(mode):
    """Give JAX and PyTorch the same float32 matrix-product precision; returns what was set.

    ``"highest"``: full float32 everywhere. ``"tf32"``: TensorFloat-32 (10-bit mantissa
    products) where the GPU has it, in XLA's dots and in PyTorch's matmuls and cuDNN calls
    (cuDNN's RNNs included). A CPU computes in float32 either way. Call before compiling.
    """
    if mode not in ("highest", "tf32"):
        raise ValueError(f"matmul precision {mode!r}: choose highest or tf32")
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if mode == "tf32" else "highest")
    settings = {"mode": mode, "jax_default_matmul_precision": jax.config.jax_default_matmul_precision}
    try:
        import torch
    except ImportError:
        return settings
    torch.set_float32_matmul_precision("high" if mode == "tf32" else "highest")
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    settings["torch_float32_matmul_precision"] = torch.get_float32_matmul_precision()
    settings["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    return settings


def matmul_precision_for_backend(mode):
    """:func:`set_float32_matmul_precision` on an accelerator; on a CPU, where both libraries
    compute float32 products in float32 whatever the setting, nothing is changed."""
    if jax.default_backend() == "cpu":
        return {"mode": "float32 (CPU)"}
    return set_float32_matmul_precision(mode)


def describe_environment():
    """JSON-ready description of the device, software and load."""
    device = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "processor": cpu_model(),
        "cpu": cpu_details(),
        "versions": library_versions(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "malloc": running_malloc(),
        "load_average": load_average(),
    }
