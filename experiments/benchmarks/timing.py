"""Fair wall-clock timing of competing implementations in one process.

Each candidate is a zero-argument callable doing one unit of work (a training step, a
forward pass) plus a ``sync`` that waits for its result (``jax.block_until_ready`` for JAX,
``torch.cuda.synchronize`` for PyTorch on a GPU). :func:`measure_alternating`

1. times each candidate's first call alone (for JAX: tracing + compilation, reported as
   ``first_call_s`` and kept out of the figures),
2. runs ``warmup`` more untimed calls of each,
3. then ``repeats`` rounds in which every candidate runs once, the order rotating round by
   round, so that a change in machine load during the run hits every candidate alike,
4. and reports the median (plus quartiles, min, and every sample).

Ratios between candidates measured this way stay meaningful on a shared, loaded machine.
"""

import dataclasses
import statistics
import time
from typing import Any, Callable

import jax


@dataclasses.dataclass
class Candidate:
    """One implementation under test: ``run()`` does one unit of work, ``sync(result)`` waits.

    A JAX candidate also names its jitted ``program`` and the ``arguments()`` its next call
    passes, for the compile-time profile (``compile_time``): :meth:`trace`.
    """

    name: str
    run: Callable[[], Any]
    sync: Callable[[Any], Any] = jax.block_until_ready
    program: Any = None
    arguments: Callable[[], tuple] | None = None

    def trace(self, place=None):
        """The program of the next call traced but not compiled (a :class:`jax.stages.Traced`);
        ``place(arguments)`` may first swap the arguments, e.g. for abstract values on
        another device (``jax.ShapeDtypeStruct`` with a sharding)."""
        if self.program is None:
            raise ValueError(f"candidate {self.name!r} is not a jitted JAX program")
        arguments = self.arguments()
        return self.program.trace(*(place(arguments) if place else arguments))


@dataclasses.dataclass
class Timing:
    """Seconds per call of one candidate: median over ``samples``, first call kept apart."""

    name: str
    first_call_s: float
    samples: list[float]

    @property
    def median_s(self):
        return statistics.median(self.samples)

    def quartiles_s(self):
        """``(q1, q3)`` of the samples (equal to the only sample when there is one)."""
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q1, q3

    def summary(self):
        """JSON-ready dict of every figure."""
        q1, q3 = self.quartiles_s()
        return {
            "median_s": self.median_s, "q1_s": q1, "q3_s": q3, "min_s": min(self.samples),
            "first_call_s": self.first_call_s, "samples_s": list(self.samples),
        }


def torch_candidates(name, loss_fn, model, optimizer, device, *, clip_norm=None):
    """``{"train": Candidate, "forward": Candidate}`` for a PyTorch model, as it is usually run.

    ``train``: ``zero_grad``, ``loss_fn().backward()``, optional ``clip_grad_norm_`` of
    ``model``'s parameters to ``clip_norm``, ``optimizer.step()``; ``forward``: ``loss_fn()``
    under ``inference_mode``. On ``device == "cuda"`` each call waits for the GPU.
    """
    import torch

    def train():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        return loss

    def forward():
        with torch.inference_mode():
            return loss_fn()

    sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (lambda result: result)
    return {"train": Candidate(name, train, sync), "forward": Candidate(name, forward, sync)}


def time_call(candidate):
    """Seconds for one call of ``candidate``, waiting for its result."""
    start = time.perf_counter()
    candidate.sync(candidate.run())
    return time.perf_counter() - start


def measure_alternating(candidates, *, repeats=10, warmup=2, before_round=None):
    """Time ``candidates`` round-robin; returns ``{name: Timing}`` in the given order.

    ``before_round()``, if given, runs untimed before each timed round (e.g. waiting for a
    shared machine to go idle).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names must be unique, got {names}")
    first_call = {c.name: time_call(c) for c in candidates}
    for _ in range(warmup):
        for candidate in candidates:
            time_call(candidate)
    samples = {c.name: [] for c in candidates}
    for round_index in range(repeats):
        if before_round is not None:
            before_round()
        shift = round_index % len(candidates)
        for candidate in candidates[shift:] + candidates[:shift]:
            samples[candidate.name].append(time_call(candidate))
    return {name: Timing(name, first_call[name], samples[name]) for name in names}
