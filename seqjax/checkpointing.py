"""Checkpoints of a training run with orbax-checkpoint: the latest state and the best params.

Layout under ``WORKDIR/checkpoints``: ``latest/STEP`` holds the whole train state (params,
optimizer state, recurrent carry) plus a JSON record (step, best validation loss), so that a
rerun resumes exactly; ``best/STEP`` holds the params with the lowest validation loss, which
sampling loads. Saves are synchronous and atomic (orbax writes to a temporary folder and
renames it), so a run killed at any point leaves the previous checkpoint intact.
"""

from pathlib import Path

import jax
import orbax.checkpoint as ocp

from seqjax.errors import CheckpointMismatchError


def _manager(directory, max_to_keep):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
    )
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _restore(manager, step, target, what):
    try:
        return manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(target)), record=ocp.args.JsonRestore()
            ),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointMismatchError(
            f"the {what} checkpoint at step {step} in {manager.directory} does not fit this "
            f"model ({str(error).splitlines()[0]}); use a fresh --workdir or the run's own config"
        ) from None


class RunCheckpoints:
    """The ``latest`` and ``best`` checkpoints of one run directory."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.latest = _manager(self.directory / "latest", max_to_keep=2)
        self.best = _manager(self.directory / "best", max_to_keep=1)

    def has_run(self):
        """Whether a latest checkpoint exists (a run to resume, whose config must be kept)."""
        return self.latest.latest_step() is not None

    def save_latest(self, step, state, record):
        self.latest.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)),
        )

    def save_best(self, step, params, record):
        if step in self.best.all_steps():  # recomputed after a resume: same params, keep them
            return
        self.best.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(params), record=ocp.args.JsonSave(record)),
        )

    def restore_latest(self, target_state):
        """``(state, record)`` of the latest checkpoint, or ``None`` when there is none.

        Best checkpoints newer than it (saved by a run killed before its next latest
        checkpoint; all of them when there is no latest) are dropped: the run recomputes them.
        """
        step = self.latest.latest_step()
        for newer in [s for s in self.best.all_steps() if step is None or s > step]:
            self.best.delete(newer)
        if step is None:
            return None
        restored = _restore(self.latest, step, target_state, "latest")
        return restored.state, dict(restored.record)

    def restore_best(self, target_params):
        """``(params, record)`` with the lowest validation loss (the latest if none was evaluated)."""
        manager = self.best if self.best.latest_step() is not None else self.latest
        step = manager.latest_step()
        if step is None:
            raise CheckpointMismatchError(
                f"no checkpoint in {self.directory}: train first with "
                "python -m experiments.train --config=... --workdir=..."
            )
        if manager is self.latest:
            restored = _restore(manager, step, {"params": target_params}, "latest")
            return restored.state["params"], dict(restored.record)
        restored = _restore(manager, step, target_params, "best")
        return restored.state, dict(restored.record)
