"""Check an experiment config before any work starts, with messages that name the fix."""

from seqjax.errors import ConfigError
from seqjax.models import MODEL_KINDS

POSITIVE_INTS = ("num_steps", "batch_size", "seq_len", "log_every", "eval_every", "checkpoint_every")
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


def check_config(config):
    """Raise :class:`ConfigError` on the first missing, mistyped or out-of-range field."""
    for key in POSITIVE_INTS:
        value = _get(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config.{key} must be a positive integer, got {value!r}")
    for key, choices in CHOICES.items():
        value = _get(config, key)
        if value not in choices:
            raise ConfigError(f"config.{key} must be one of {', '.join(choices)}; got {value!r}")
    if not isinstance(_get(config, "data.corpus"), str) or not config.data.corpus:
        raise ConfigError("config.data.corpus must name a corpus or a text file path")
    for key in ("optim.learning_rate", "optim.end_learning_rate", "optim.grad_clip"):
        if _get(config, key) < 0:
            raise ConfigError(f"config.{key} must be >= 0, got {_get(config, key)!r}")
    if not 0.0 <= _get(config, "data.stream_reset_probability") <= 1.0:
        raise ConfigError("config.data.stream_reset_probability must be in [0, 1], got "
                          f"{config.data.stream_reset_probability!r}")
    if not 0.0 <= _get(config, "model.dropout") < 1.0:
        raise ConfigError(f"config.model.dropout must be in [0, 1), got {config.model.dropout!r}")
