"""Tiny configs and corpora for the training tests (seconds on 2 CPU cores)."""

from experiments.configs.defaults import base_config

TEXT = "".join(
    f"the {animal} sat on the {thing} number {i}.\n"
    for i in range(300)
    for animal, thing in [("cat", "mat"), ("dog", "log"), ("bird", "wire")][i % 3:i % 3 + 1]
)


def write_corpus(folder, text=TEXT):
    path = folder / "corpus.txt"
    path.write_text(text)
    return str(path)


def tiny_config(corpus_path, kind="lstm", **overrides):
    config = base_config()
    config.num_steps = 12
    config.batch_size = 4
    config.seq_len = 16
    config.log_every = 1
    config.eval_every = 4
    config.eval_batches = 2
    config.checkpoint_every = 4
    config.progress_bar = False
    config.data.corpus = corpus_path
    config.model.kind = kind
    config.model.embed_size = 8
    config.model.hidden_size = 16
    config.model.num_layers = 2
    config.model.dropout = 0.1
    config.optim.learning_rate = 1e-2
    config.optim.warmup_steps = 2
    config.sample.num_tokens = 10
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config
