"""Language models with one interface (see :func:`build_model`).

Every model is a Flax module with
``__call__(tokens [B, T], carry=None, *, deterministic=True) -> (logits [B, T, V], carry)``,
``initial_carry(batch_size)``, and the decoding pair ``init_decode_state(batch_size,
max_length)`` / ``decode_step(state, token [B]) -> (logits [B, V], state)`` used by
:mod:`seqjax.generation`.
"""

from seqjax.models import recurrent_lm
from seqjax.recurrent.cells import CELLS

RECURRENT_KINDS = tuple(CELLS)  # elman, lstm, gru, min_gru, min_lstm, lru, rg_lru
MODEL_KINDS = RECURRENT_KINDS + ("transformer",)


def build_model(model_config, vocab_size, context_length, mesh=None):
    """The model named by ``model_config.kind`` (a cell of :data:`RECURRENT_KINDS` or ``transformer``).

    ``mesh``: the device mesh a training run splits its batch over (the recurrent models' fused
    layers then run on each device's rows; see :func:`seqjax.recurrent.fused_bptt.fused_unroll`).
    """
    kind = model_config.kind
    if kind in RECURRENT_KINDS:
        return recurrent_lm.from_config(model_config, vocab_size, context_length, mesh)
    if kind == "transformer":
        from seqjax.models import transformer_lm

        return transformer_lm.from_config(model_config, vocab_size, context_length)
    raise ValueError(f"unknown model.kind {kind!r}: choose one of {', '.join(MODEL_KINDS)}")
