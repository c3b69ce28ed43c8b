"""The optimizer of every run: AdamW with linear warmup and cosine decay, after clipping."""

import jax
import optax


def make_optimizer(optim_config, num_steps):
    """``(optimizer, schedule)``: global-norm clipping (``grad_clip > 0``), then AdamW whose
    learning rate warms up linearly from 0 to ``learning_rate`` and decays by a cosine to
    ``end_learning_rate`` at ``num_steps``; weight decay applies to matrices only."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=optim_config.learning_rate,
        warmup_steps=min(optim_config.warmup_steps, num_steps),
        decay_steps=max(num_steps, optim_config.warmup_steps + 1),
        end_value=optim_config.end_learning_rate,
    )
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    adamw = optax.adamw(
        schedule, b1=optim_config.b1, b2=optim_config.b2,
        weight_decay=optim_config.weight_decay, mask=decay_mask,
    )
    if optim_config.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(optim_config.grad_clip), adamw), schedule
    return adamw, schedule
