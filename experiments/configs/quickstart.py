"""Quick start: a small LSTM on the Python standard library's source; learns in about 2 minutes on 2 CPU cores."""

from experiments.configs.defaults import base_config


def get_config():
    config = base_config()
    config.num_steps = 1500
    config.batch_size = 32
    config.seq_len = 64
    config.log_every = 25
    config.eval_every = 500
    config.eval_batches = 20
    config.checkpoint_every = 500
    config.data.corpus = "python_stdlib"
    config.model.kind = "lstm"
    config.model.embed_size = 32
    config.model.hidden_size = 256
    config.optim.learning_rate = 3e-3
    config.optim.warmup_steps = 50
    config.sample.prompt = "def "
    return config
