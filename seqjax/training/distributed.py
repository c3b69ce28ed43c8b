"""Joining a multi-process run (several hosts, or several processes on one host).

Every process runs the same command; JAX's distributed runtime connects them through a
coordinator (process 0's address), after which ``jax.devices()`` lists the devices of every
process and one ``jax.jit`` program runs over all of them. The settings come from the
arguments, else from the environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``); with none of them JAX detects the cluster itself when the job is one of
several tasks of SLURM or Open MPI, or when ``auto=True`` (Cloud TPU, Kubernetes...).

If a process dies, the others stop within ``heartbeat_timeout`` seconds: JAX's coordination
service notices the missing heartbeats and terminates them with "Terminating process because
the JAX distributed service detected fatal errors... another task died". Rerunning the same
command then resumes from the last checkpoint.
"""

import os

import jax

from seqjax.errors import ConfigError

ENVIRONMENT = {"coordinator_address": "JAX_COORDINATOR_ADDRESS",
               "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}
# Set by schedulers that start one process per task: more than 1 means a multi-process job.
TASK_COUNTS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def started_as_one_of_several_tasks():
    """Whether SLURM (``srun``) or Open MPI (``mpirun``) started this process as one of many."""
    return any(int(os.environ.get(name, "1") or 1) > 1 for name in TASK_COUNTS)


def settings_from(coordinator_address=None, num_processes=None, process_id=None):
    """The three settings, each from its argument or else its environment variable."""
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
             "process_id": process_id}
    for key, variable in ENVIRONMENT.items():
        if given[key] is None and os.environ.get(variable):
            value = os.environ[variable]
            given[key] = value if key == "coordinator_address" else int(value)
    return given


def initialize(coordinator_address=None, num_processes=None, process_id=None, *, auto=False,
               heartbeat_timeout=60):
    """Join the multi-process run described by the settings; returns whether one was joined.

    Must come before any other JAX call of the process. With no settings and ``auto=False``
    it does nothing (a single-process run) unless SLURM or Open MPI started several tasks.
    """
    settings = settings_from(coordinator_address, num_processes, process_id)
    auto = auto or started_as_one_of_several_tasks()
    if all(value is None for value in settings.values()) and not auto:
        return False
    if not auto and None in settings.values():
        missing = [key for key, value in settings.items() if value is None]
        raise ConfigError(
            f"a multi-process run needs --coordinator_address, --num_processes and --process_id "
            f"(or {', '.join(ENVIRONMENT.values())}); missing: {', '.join(missing)}"
        )
    jax.distributed.initialize(
        **{key: value for key, value in settings.items() if value is not None},
        heartbeat_timeout_seconds=heartbeat_timeout, shutdown_timeout_seconds=heartbeat_timeout,
    )
    return True


def describe_devices():
    """One line: the backend, the devices of the whole run and their kind, the processes.

    ``"devices: cpu, 1 x cpu (1 process)"``, ``"devices: gpu, 16 x NVIDIA H100 80GB HBM3
    (2 processes, 8 here)"``.
    """
    devices = jax.devices()
    kinds = sorted({device.device_kind for device in devices})
    processes = jax.process_count()
    where = (f"{processes} processes, {jax.local_device_count()} here" if processes > 1
             else "1 process")
    return f"devices: {jax.default_backend()}, {len(devices)} x {' + '.join(kinds)} ({where})"
