"""Configs of the generated tasks (:mod:`seqjax.tasks`), one file per task.

Each file's ``get_config(preset)`` takes a model preset after a colon in ``--config``::

    python -m experiments.train --config=experiments/configs/tasks/parity.py:lstm \\
        --workdir=runs/parity_lstm
    python -m experiments.train --config=experiments/configs/tasks/reverse.py:gru_additive \\
        --workdir=runs/reverse

Presets: ``elman``, ``lstm``, ``gru``, ``transformer`` (a bidirectional encoder),
``causal_transformer`` (decoder-only: causal self-attention, rotary positions, the answer of a
many-to-one task read at the last step; not for seq2seq tasks), and for seq2seq tasks
``<cell>_<attention>`` with attention ``none`` (the plain cell name), ``additive`` or ``dot``
(``gru_additive``). A preset sets ``model.kind``/``model.attention`` and the kind's learning
rate; single fields can still be overridden (``--config.model.hidden_size=128``,
``--config.task_options.max_length=16``). The budget is fixed and small: a run takes well
under a minute or two on 2 CPU cores.
"""

import inspect

import ml_collections

from experiments.configs.defaults import base_config
from seqjax.errors import ConfigError
from seqjax.models.seq2seq import ATTENTIONS
from seqjax.models.sequence_heads import CAUSAL_TRANSFORMER, ENCODER_KINDS as KINDS
from seqjax.tasks import TASKS

# Peak learning rates that train each family well at the fixed 400-step budget.
LEARNING_RATES = {"elman": 3e-3, "lstm": 1e-2, "gru": 1e-2, "transformer": 2e-3,
                  CAUSAL_TRANSFORMER: 2e-3, "min_gru": 1e-2, "min_lstm": 1e-2, "lru": 3e-3,
                  "rg_lru": 1e-2}
LM_ONLY_KEYS = ("seq_len", "data", "sample", "eval_batches")


def parse_preset(preset):
    """``"gru_additive"`` -> ``("gru", "additive")``; ``"lstm"`` -> ``("lstm", "none")``;
    ``"causal_transformer"`` -> ``("causal_transformer", "none")``."""
    if preset in KINDS:
        return preset, "none"
    kind, _, attention = preset.rpartition("_")
    transformer_with_rnn_attention = kind == "transformer" and attention != "none"
    if kind not in KINDS or attention not in ATTENTIONS or transformer_with_rnn_attention:
        raise ConfigError(
            f"unknown model preset {preset!r}: use one of {', '.join(KINDS)}, or "
            f"<cell>_<attention> with attention in {', '.join(ATTENTIONS[1:])} (e.g. gru_additive)"
        )
    return kind, attention


def task_model(preset):
    """The ``model`` section: every field either encoder family reads (the kind picks)."""
    kind, attention = parse_preset(preset)
    transformer, causal = kind in ("transformer", CAUSAL_TRANSFORMER), kind == CAUSAL_TRANSFORMER
    model = ml_collections.ConfigDict()
    model.kind = kind  # elman | lstm | gru | min_gru | min_lstm | lru | rg_lru | transformer | causal_transformer
    model.scan = "auto"  # linear cells' scan back-end: sequential | associative | chunked | log | auto
    model.hidden_size = 64  # recurrent state width H, or the Transformer's width W
    model.embed_size = 32  # token / input embedding width of the recurrent models
    model.num_layers = 2 if transformer else 1  # stacked layers / blocks
    model.direction = "forward"  # recurrent encoder: forward | backward | bidirectional
    model.attention = attention  # RNN decoder over encoder states: none | additive | dot
    model.num_heads = 4  # Transformer attention heads
    model.mlp_ratio = 2  # Transformer MLP width = mlp_ratio * W
    model.positional = "rotary" if causal else "learned"  # learned | sinusoidal (| rotary: causal)
    model.pooling = "last" if causal else "mean"  # many-to-one summary: mean | max | last step
    model.dropout = 0.0  # Transformer dropout on embeddings, attention and MLP outputs
    model.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
    return model


def task_config(task, preset="gru"):
    """A config for ``task`` (a name in :data:`seqjax.tasks.TASKS`) with the model ``preset``."""
    config = base_config()
    for key in LM_ONLY_KEYS:
        del config[key]
    config.task = task  # which generated task (seqjax.tasks)
    options = inspect.signature(TASKS[task]).parameters.values()
    config.task_options = {p.name: p.default for p in options}  # the generator's options
    config.eval_examples = 512  # size of the fixed held-out set
    config.eval_beam_size = 0  # seq2seq: > 1 also reports val_exact_match_beam
    config.num_steps = 400
    config.batch_size = 64
    config.log_every = 20
    config.eval_every = 100
    config.checkpoint_every = 200
    config.model = task_model(preset)
    config.optim.learning_rate = LEARNING_RATES[config.model.kind]
    config.optim.end_learning_rate = config.optim.learning_rate / 10
    config.optim.warmup_steps = 20
    return config
