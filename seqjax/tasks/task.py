"""What a generated task is: a seeded example generator plus the facts a model needs about it.

A :class:`Task` turns a NumPy random generator into a :class:`TaskBatch` of padded arrays with
fixed shapes (the task's maximum lengths, so one compiled program serves every batch). Batches
are pure functions of integers: training batch ``step`` of a run comes from the random stream
``(seed, 0, step)``, the held-out set from ``(seed, 1)``, so runs are reproducible and resumable.
Small example spaces can overlap between the two streams unless the task splits its examples
(``number_words`` does: its held-out numbers never appear in training).
"""

import dataclasses
from typing import Callable, NamedTuple

import numpy as np

from seqjax.tasks.vocabulary import PAD, Vocabulary

KINDS = ("classification", "regression", "tagging", "seq2seq")
TRAIN_STREAM, HELD_OUT_STREAM = 0, 1


class TaskBatch(NamedTuple):
    """A padded batch of ``N`` examples (a pytree of arrays, so it passes through ``jax.jit``).

    - ``inputs``: int32 ``[N, T]`` token ids (0 = padding) or float32 ``[N, T, F]`` values;
    - ``input_lengths``: int32 ``[N]``, valid steps at the front of each row;
    - ``targets``: int32 ``[N]`` classes, float32 ``[N]`` values, int32 ``[N, T]`` tags, or
      int32 ``[N, T_out]`` output ids ending in ``EOS`` then padding (seq2seq);
    - ``target_lengths``: int32 ``[N]``: valid target steps (tags: the input length; seq2seq:
      the output length including ``EOS``; one value: 1).
    """

    inputs: np.ndarray
    input_lengths: np.ndarray
    targets: np.ndarray
    target_lengths: np.ndarray


@dataclasses.dataclass(frozen=True)
class Task:
    """A generated task. ``generate(rng, count, split)`` draws ``count`` examples.

    ``split`` is ``"train"`` or ``"held_out"``. ``input_vocabulary`` is ``None`` for
    real-valued inputs of ``input_features`` features. ``num_outputs``: classes
    (classification, tagging), 1 (regression), or the output vocabulary size (seq2seq).
    ``chance`` documents the chance-level baseline that :mod:`seqjax.tasks.baselines` measures.
    ``full_length``: every example fills ``max_input_length`` (no padding at all).
    ``causal``: the target at step ``t`` is (a function of) the input at ``t + 1``, so only a
    forward recurrent encoder, which never sees later inputs, may be trained on it.
    """

    name: str
    kind: str
    generate: Callable[[np.random.Generator, int, str], TaskBatch]
    input_vocabulary: Vocabulary | None
    num_outputs: int
    max_input_length: int
    chance: str
    input_features: int = 0
    output_vocabulary: Vocabulary | None = None
    max_target_length: int = 1
    full_length: bool = False
    causal: bool = False

    def training_batch(self, seed, step, batch_size):
        """Training batch ``step`` of a run seeded ``seed``: a pure function of its arguments."""
        return self.generate(np.random.default_rng((seed, TRAIN_STREAM, step)), batch_size, "train")

    def held_out_set(self, seed, count):
        """The fixed evaluation set of ``count`` examples of a run seeded ``seed``."""
        return self.generate(np.random.default_rng((seed, HELD_OUT_STREAM)), count, "held_out")


def check_lengths(min_length, max_length, smallest=1):
    """Raise ``ValueError`` unless ``smallest <= min_length <= max_length``."""
    if not smallest <= min_length <= max_length:
        raise ValueError(
            f"need {smallest} <= min_length <= max_length, got min_length={min_length}, "
            f"max_length={max_length}"
        )


def random_lengths(rng, count, min_length, max_length):
    """``count`` lengths drawn uniformly from ``[min_length, max_length]``: int32 ``[count]``."""
    return rng.integers(min_length, max_length + 1, size=count).astype(np.int32)


def valid_steps(lengths, num_steps):
    """Boolean ``[N, num_steps]``: ``True`` at the valid steps ``t < lengths[n]``."""
    return np.arange(num_steps)[None, :] < np.asarray(lengths)[:, None]


def pad_id_sequences(sequences, length):
    """Lists of ids -> int32 ``[N, length]`` padded with ``PAD``, and their lengths ``[N]``."""
    padded = np.full((len(sequences), length), PAD, np.int32)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded, np.array([len(s) for s in sequences], np.int32)
