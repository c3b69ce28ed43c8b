"""Character-level gru language model on Tiny Shakespeare (stateful truncated BPTT, as char-rnn)."""

from experiments.configs.defaults import base_config


def get_config():
    config = base_config()
    config.num_steps = 2000
    config.batch_size = 32
    config.seq_len = 128
    config.log_every = 50
    config.eval_every = 500
    config.eval_batches = 0  # the whole validation split
    config.checkpoint_every = 500
    config.data.corpus = "tiny_shakespeare"
    config.model.kind = "gru"
    config.model.embed_size = 64
    config.model.hidden_size = 512
    config.model.num_layers = 1
    config.model.dropout = 0.0
    config.optim.learning_rate = 2e-3
    config.optim.end_learning_rate = 1e-4
    config.sample.prompt = "ROMEO:"
    return config
