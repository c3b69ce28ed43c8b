"""Character-level GPT on Tiny Shakespeare: a larger context and model than nanogpt_cpu.py."""

from experiments.configs.defaults import base_config, transformer_model


def get_config():
    config = base_config()
    config.num_steps = 3000
    config.batch_size = 32
    config.seq_len = 128
    config.log_every = 50
    config.eval_every = 500
    config.eval_batches = 0
    config.checkpoint_every = 500
    config.data.corpus = "tiny_shakespeare"
    config.data.batching = "random"
    config.model = transformer_model(num_layers=4, num_heads=4, width=192, dropout=0.1, use_bias=False)
    config.model.positional = "rotary"
    config.optim.learning_rate = 1e-3
    config.optim.end_learning_rate = 1e-4
    config.optim.warmup_steps = 100
    config.optim.b2 = 0.99
    config.optim.weight_decay = 0.1
    config.sample.prompt = "ROMEO:"
    config.sample.num_tokens = 300  # past the context window, which slides
    return config
