"""The count n-gram language model (add-k smoothing): the floor every neural model is compared with.

.. math::

    p(w \\mid c) = \\frac{\\mathrm{count}(c, w) + k}{\\mathrm{count}(c) + k V}

where ``c`` is the previous ``n - 1`` tokens, ``V`` the vocabulary size and ``count(c)`` the number
of times ``c`` is followed by some token in the training stream. A position ``t < n - 1`` (the start
of an evaluated array) has only ``t`` predecessors and uses the ``(t + 1)``-gram, so counts are kept
for every order ``1..n``. An unseen context has ``count(c) = 0`` and gets the uniform distribution.

Counts are stored as sorted int64 ids: a context of ``m`` tokens is its base-``V`` number, a
(context, next) pair is ``context * V + w``; lookup is ``np.searchsorted``. Pure NumPy::

    model = NGramLM.fit(train_tokens, order=3, vocab_size=65, k=0.1)
    nats_per_token = model.loss(val_tokens)
"""

from dataclasses import dataclass

import numpy as np

INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class OrderCounts:
    """The counts of one order ``m + 1`` (contexts of ``m`` tokens), as sorted unique ids.

    ``context_ids`` / ``context_counts``: ``[C]``; ``joint_ids`` / ``joint_counts``: ``[J]``, with
    ``joint_id = context_id * V + w``; ``context_counts`` are the sums of ``joint_counts``.
    """

    context_ids: np.ndarray
    context_counts: np.ndarray
    joint_ids: np.ndarray
    joint_counts: np.ndarray


def window_ids(tokens, length, vocab_size):
    """Base-``V`` ids ``[N - length + 1]`` of every window ``tokens[t : t + length]`` (int64)."""
    num_windows = len(tokens) - length + 1
    ids = np.zeros(max(num_windows, 0), dtype=np.int64)
    for offset in range(length):
        ids = ids * vocab_size + tokens[offset : offset + num_windows]
    return ids


def count_order(tokens, context_length, vocab_size):
    """The :class:`OrderCounts` of every (``context_length``-token context, next token) window."""
    joint_ids, joint_counts = np.unique(
        window_ids(tokens, context_length + 1, vocab_size), return_counts=True
    )
    context_of_joint = joint_ids // vocab_size
    context_ids, first_index = np.unique(context_of_joint, return_index=True)
    context_counts = np.add.reduceat(joint_counts, first_index) if len(joint_ids) else joint_counts
    return OrderCounts(context_ids, context_counts, joint_ids, joint_counts)


def lookup_counts(sorted_ids, counts, query_ids):
    """``counts`` of each id in ``query_ids`` (``[Q]``), 0 for ids absent from ``sorted_ids``."""
    if len(sorted_ids) == 0:
        return np.zeros(np.shape(query_ids), dtype=np.int64)
    index = np.minimum(np.searchsorted(sorted_ids, query_ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[index] == query_ids, counts[index], 0)


def as_token_array(tokens, vocab_size, allow_empty=False):
    """``tokens`` as a 1-D int64 array, checked to lie in ``[0, vocab_size)``."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D sequence of ids, got shape {tokens.shape}")
    if tokens.size == 0:
        if allow_empty:
            return tokens.astype(np.int64)
        raise ValueError("tokens is empty: an n-gram model needs at least one token")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(
            f"token ids must lie in [0, vocab_size={vocab_size}), got ids in "
            f"[{tokens.min()}, {tokens.max()}]"
        )
    return tokens.astype(np.int64)


def check_hyperparameters(order, vocab_size, k):
    """Raise ``ValueError`` unless ``order >= 1``, ``vocab_size >= 1``, ``k > 0``, ``V**n`` fits."""
    if order < 1:
        raise ValueError(f"order must be >= 1 (1 = unigram), got {order}")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    if not k > 0:
        raise ValueError(f"smoothing k must be > 0 (k = 0 gives unseen tokens p = 0), got {k}")
    if vocab_size**order > INT64_MAX:
        raise ValueError(
            f"vocab_size**order = {vocab_size}**{order} exceeds the int64 limit 2**63 - 1 of the "
            "n-gram ids: use a smaller order or vocabulary"
        )


@dataclass(frozen=True, eq=False)
class NGramLM:
    """An add-k smoothed n-gram model; ``counts[m]`` holds the counts of order ``m + 1``."""

    order: int
    vocab_size: int
    k: float
    counts: tuple

    @classmethod
    def fit(cls, tokens, order, vocab_size, k=1.0):
        """Count every 1..``order``-gram of the stream ``tokens`` ``[N]`` (ids in ``[0, V)``)."""
        order, vocab_size = int(order), int(vocab_size)
        check_hyperparameters(order, vocab_size, k)
        tokens = as_token_array(tokens, vocab_size)
        counts = tuple(count_order(tokens, m, vocab_size) for m in range(order))
        return cls(order, vocab_size, float(k), counts)

    def window_counts(self, joint_ids, context_length):
        """``(count(c, w), count(c))``, each ``[Q]``, of (context, next) ids ``[Q]``.

        ``context_length`` is the number of tokens in every context ``c``.
        """
        order_counts = self.counts[context_length]
        joint = lookup_counts(order_counts.joint_ids, order_counts.joint_counts, joint_ids)
        context = lookup_counts(
            order_counts.context_ids, order_counts.context_counts, joint_ids // self.vocab_size
        )
        return joint, context

    def log_prob_of_windows(self, joint_ids, context_length):
        """Natural-log ``p(w | c)`` ``[Q]`` of (context, next) ids ``[Q]``, as ``window_counts``."""
        joint, context = self.window_counts(joint_ids, context_length)
        return np.log(joint + self.k) - np.log(context + self.k * self.vocab_size)

    def log_probs(self, tokens):
        """Natural-log probability ``[T]`` of each token given its predecessors within ``tokens``.

        Token ``t`` is conditioned on its last ``min(t, order - 1)`` predecessors.
        """
        tokens = as_token_array(tokens, self.vocab_size, allow_empty=True)
        full_context = self.order - 1
        head = min(full_context, len(tokens))
        head_log_probs = [
            self.log_prob_of_windows(window_ids(tokens[: t + 1], t + 1, self.vocab_size), t)
            for t in range(head)
        ]
        tail_ids = window_ids(tokens, full_context + 1, self.vocab_size)
        tail_log_probs = self.log_prob_of_windows(tail_ids, full_context)
        return np.concatenate(head_log_probs + [tail_log_probs])

    def loss(self, tokens):
        """Mean negative log-likelihood of ``tokens`` ``[T]``, in nats per token."""
        return float(-self.log_probs(as_token_array(tokens, self.vocab_size)).mean())

    def next_token_probs(self, context):
        """The distribution ``[V]`` of the token after ``context``; its last ``order - 1`` count.

        A shorter context uses the lower order; an unseen one gives the uniform distribution.
        """
        context = as_token_array(context, self.vocab_size, allow_empty=True)
        context_length = min(len(context), self.order - 1)
        last_tokens = context[len(context) - context_length :]
        context_id = window_ids(last_tokens, context_length, self.vocab_size)
        joint_ids = context_id[0] * self.vocab_size + np.arange(self.vocab_size, dtype=np.int64)
        joint_counts, context_counts = self.window_counts(joint_ids, context_length)
        return (joint_counts + self.k) / (context_counts + self.k * self.vocab_size)
