"""Tiny configs and corpora for the training tests (seconds on 2 CPU cores)."""

from pathlib import Path

from experiments.configs.defaults import base_config, transformer_model

TEXT = "".join(
    f"the {animal} sat on the {thing} number {i}.\n"
    for i in range(300)
    for animal, thing in [("cat", "mat"), ("dog", "log"), ("bird", "wire")][i % 3:i % 3 + 1]
)


def damage_checkpoint(step_folder):
    """Overwrite the array data of an orbax checkpoint folder (``.../latest/STEP``) with junk,
    as a failing disk or a copy cut short would leave it."""
    for data_file in (Path(step_folder) / "state" / "d").iterdir():
        data_file.write_bytes(b"junk")


DAMAGE_KINDS = ("truncated", "junk", "emptied", "deleted")


def damage_file(path, kind):
    """Damage one file as a disk or a copy can: cut to half its length, overwritten with as
    many bytes of junk, emptied, or deleted."""
    path = Path(path)
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif kind == "junk":
        path.write_bytes(bytes((7 * i + 201) % 256 for i in range(len(data))))
    elif kind == "emptied":
        path.write_bytes(b"")
    elif kind == "deleted":
        path.unlink()
    else:
        raise ValueError(f"unknown kind of damage {kind!r}: one of {DAMAGE_KINDS}")


def orbax_async_read(message):
    """An ``async def read()`` raising ``ValueError(message)`` whose code lives, by its file
    name, in orbax's package: what an abandoned read of orbax's looks like to Python."""
    from seqjax.training.checkpoints import ORBAX_SOURCE

    source = f"async def read():\n    raise ValueError({message!r})\n"
    namespace = {}
    exec(compile(source, ORBAX_SOURCE + "abandoned_read.py", "exec"), namespace)  # noqa: S102
    return namespace["read"]


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


def sharding_config(name, corpus_path):
    """The small configs the sharded tests train on 1 and on 4 devices: ``lstm`` (stream
    batching, a carried state), ``transformer`` (random windows), ``task`` (parity) and
    ``min_gru`` (a cell linear in its state, on the associative scan)."""
    if name == "task":
        from experiments.configs.tasks import task_config

        config = task_config("parity", "gru")
        config.task_options.max_length = 8
        config.update(num_steps=12, batch_size=8, eval_examples=32, log_every=1, progress_bar=False)
        config.model.hidden_size = 16
    elif name == "transformer":
        config = tiny_config(corpus_path, "lstm", **{"data.batching": "random"})
        config.model = transformer_model(num_layers=1, num_heads=2, width=16, dropout=0.1)
    elif name == "min_gru":  # a cell linear in its state, on the parallel (associative) scan
        config = tiny_config(corpus_path, "min_gru", **{"model.num_layers": 1,
                                                        "model.scan": "associative"})
    else:
        config = tiny_config(corpus_path, "lstm", **{"model.num_layers": 1})
    config.eval_every = config.checkpoint_every = 6
    config.mesh.fsdp_min_size = 0  # shard every parameter that fsdp divides
    return config
