"""Check an experiment config before any work starts, with messages that name the fix.

:func:`check_config` checks a language-modeling config, :func:`check_task_config` a
sequence-task config against its task, :func:`check_mesh` the batch against the device mesh.
"""

from seqjax.attention import DEFAULT_IMPLEMENTATION, IMPLEMENTATIONS
from seqjax.errors import ConfigError
from seqjax.models import MODEL_KINDS
from seqjax.models.seq2seq import ATTENTIONS
from seqjax.models.sequence_heads import (
    CAUSAL_POSITIONALS, CAUSAL_TRANSFORMER, DIRECTIONS, ENCODER_KINDS, ENCODER_POSITIONALS,
    POOLINGS,
)
from seqjax.positional import POSITIONAL_KINDS
from seqjax.precision import COMPUTE_DTYPES, model_dtype_name
from seqjax.recurrent import linear_scan
from seqjax.recurrent.blocks import BLOCKS

POSITIVE_INTS = ("num_steps", "batch_size", "log_every", "eval_every", "checkpoint_every")
LM_POSITIVE_INTS = POSITIVE_INTS + ("seq_len",)
TASK_POSITIVE_INTS = POSITIVE_INTS + ("eval_examples",)
CHOICES = {
    "data.tokenizer": ("char", "word", "bpe"),
    "data.batching": ("stream", "random"),
    "model.kind": MODEL_KINDS,
}


def _get(config, dotted):
    node = config
    for part in dotted.split("."):
        if part not in node:
            raise ConfigError(f"config has no key {dotted!r}: add it to the config file")
        node = node[part]
    return node


def _check_positive_ints(config, keys):
    for key in keys:
        value = _get(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config.{key} must be a positive integer, got {value!r}")


def _check_scan(model):
    """``model.scan`` (optional; ``auto`` when absent) names a back-end the cell can run, and
    ``model.block`` (optional; ``none``) a block layout."""
    _check_choice(model.get("block", "none"), BLOCKS, "model.block")
    scan = model.get("scan", "auto")
    _check_choice(scan, linear_scan.BACKENDS + ("auto",), "model.scan")
    if scan == "log" and model.kind not in ("min_gru", "min_lstm"):
        raise ConfigError(f"config.model.scan='log' needs positive coefficients, which "
                          f"{model.kind} does not have: use min_gru or min_lstm, or another scan")


def _check_dropout(config):
    if not 0.0 <= _get(config, "model.dropout") < 1.0:
        raise ConfigError(f"config.model.dropout must be in [0, 1), got {config.model.dropout!r}")


def check_config(config):
    """Raise :class:`ConfigError` on the first missing, mistyped or out-of-range field."""
    _check_positive_ints(config, LM_POSITIVE_INTS)
    for key, choices in CHOICES.items():
        _check_choice(_get(config, key), choices, key)
    if not isinstance(_get(config, "data.corpus"), str) or not config.data.corpus:
        raise ConfigError("config.data.corpus must name a corpus or a text file path")
    for key in ("optim.learning_rate", "optim.end_learning_rate", "optim.grad_clip"):
        if _get(config, key) < 0:
            raise ConfigError(f"config.{key} must be >= 0, got {_get(config, key)!r}")
    if not 0.0 <= _get(config, "data.stream_reset_probability") <= 1.0:
        raise ConfigError("config.data.stream_reset_probability must be in [0, 1], got "
                          f"{config.data.stream_reset_probability!r}")
    _check_dropout(config)
    _check_scan(config.model)
    _check_dtype(config)
    if config.model.kind == "transformer":
        _check_transformer_lm(config)


def _check_transformer_lm(config):
    """A decoder-only Transformer's sizes fit together and its choices exist."""
    sizes = ("model.num_layers", "model.num_heads", "model.width", "model.mlp_ratio")
    _check_positive_ints(config, sizes)
    _check_choice(_get(config, "model.positional"), POSITIONAL_KINDS, "model.positional")
    model = config.model
    implementation = model.get("attention_impl", DEFAULT_IMPLEMENTATION)
    if implementation not in IMPLEMENTATIONS:
        names = ", ".join(name for name in IMPLEMENTATIONS if name)
        raise ConfigError(
            f"config.model.attention_impl must be one of {names}; got {implementation!r}")
    head_dim, remainder = divmod(model.width, model.num_heads)
    if remainder:
        raise ConfigError(f"config.model.width ({model.width}) must be a multiple of "
                          f"config.model.num_heads ({model.num_heads}): change either")
    if model.positional == "sinusoidal" and model.width % 2:
        raise ConfigError(
            f"sinusoidal positions need an even config.model.width, got {model.width}")
    if model.positional == "rotary" and head_dim % 2:
        raise ConfigError(f"rotary positions need an even head size (config.model.width / "
                          f"config.model.num_heads), got {head_dim}")


def _check_dtype(config):
    """``model.dtype`` (optional, float32 by default) names a compute dtype."""
    _check_choice(model_dtype_name(config.model), tuple(COMPUTE_DTYPES), "model.dtype")


def _check_choice(value, choices, key):
    if value not in choices:
        raise ConfigError(f"config.{key} must be one of {', '.join(choices)}; got {value!r}")


def check_task_config(config, task):
    """Raise :class:`ConfigError` on the first bad field of a task config, naming the fix."""
    _check_positive_ints(config, TASK_POSITIVE_INTS)
    model = config.model
    _check_choice(model.kind, ENCODER_KINDS, "model.kind")
    _check_scan(model)
    if model.kind in ("transformer", CAUSAL_TRANSFORMER):
        _check_task_transformer(model, task)
    else:
        _check_choice(model.direction, DIRECTIONS, "model.direction")
        if task.kind == "seq2seq":
            _check_choice(model.attention, ATTENTIONS, "model.attention")
    reads_later_inputs = model.kind == "transformer" or (
        model.kind != CAUSAL_TRANSFORMER and model.get("direction") != "forward")
    if task.causal and reads_later_inputs:
        raise ConfigError(
            f"task {task.name!r} predicts the next input, which a {model.kind} encoder with "
            f"direction={model.get('direction')!r} can read: use an elman, lstm or gru model "
            "with config.model.direction=forward, or a causal_transformer"
        )
    _check_dropout(config)
    _check_dtype(config)
    if config.eval_beam_size < 0:
        raise ConfigError(f"config.eval_beam_size must be >= 0 (0 = greedy only), got "
                          f"{config.eval_beam_size!r}")


def _check_task_transformer(model, task):
    """A task Transformer's sizes fit together; a causal one answers at the last valid step and
    encodes no seq2seq source."""
    causal = model.kind == CAUSAL_TRANSFORMER
    positionals = CAUSAL_POSITIONALS if causal else ENCODER_POSITIONALS
    _check_choice(model.positional, positionals, "model.positional")
    _check_choice(model.pooling, ("last",) if causal else POOLINGS, "model.pooling")
    if causal and task.kind == "seq2seq":
        raise ConfigError(f"task {task.name!r} is seq2seq, and a causal_transformer has no "
                          "decoder: use the transformer preset")
    head_dim, remainder = divmod(model.hidden_size, model.num_heads)
    if remainder:
        raise ConfigError(
            f"config.model.hidden_size ({model.hidden_size}) must be a multiple of "
            f"config.model.num_heads ({model.num_heads}): change either"
        )
    if model.positional == "sinusoidal" and model.hidden_size % 2:
        raise ConfigError(
            f"sinusoidal positions need an even config.model.hidden_size, got {model.hidden_size}"
        )
    if model.positional == "rotary" and head_dim % 2:
        raise ConfigError(f"rotary positions need an even head size (config.model.hidden_size / "
                          f"config.model.num_heads), got {head_dim}")


def check_mesh(config, num_batch_shards):
    """Every batch the run builds must split evenly over the mesh's ``data * fsdp`` devices."""
    sizes = {"batch_size": config.batch_size}
    if "eval_examples" in config:
        sizes["eval_examples"] = config.eval_examples
    for key, size in sizes.items():
        if size % num_batch_shards:
            raise ConfigError(
                f"config.{key} ({size}) must be a multiple of the {num_batch_shards} devices the "
                f"batch is split over (config.mesh.data x config.mesh.fsdp): change either"
            )
