"""Fields every experiment config has, with one comment each. Configs start from ``base_config()``."""

import ml_collections


def base_config():
    config = ml_collections.ConfigDict()
    config.seed = 0  # seeds parameters, batches and dropout: a run is a function of its config
    config.num_steps = 1000  # optimizer updates
    config.batch_size = 32  # sequences per update
    config.seq_len = 128  # tokens per training window (truncated-BPTT length / context length)
    config.log_every = 50  # steps between train_loss records in metrics.jsonl
    config.eval_every = 250  # steps between validation evaluations
    config.eval_batches = 20  # validation windows per evaluation (0 = the whole validation split)
    config.checkpoint_every = 250  # steps between checkpoints (latest; best is kept at evaluations)
    config.progress_bar = True  # tqdm bar with the current loss on stderr

    config.data = ml_collections.ConfigDict()
    config.data.corpus = "python_stdlib"  # tiny_shakespeare | python_stdlib(_full) | a file or folder
    config.data.tokenizer = "char"  # char | word | bpe
    config.data.vocab_size = 1024  # word/bpe vocabulary size (char ignores it)
    config.data.batching = "stream"  # stream: contiguous windows, state carried | random: windows
    config.data.stream_reset_probability = 0.1  # stream: chance a row's carried state is zeroed

    config.model = ml_collections.ConfigDict()
    config.model.kind = "lstm"  # elman | lstm | gru | min_gru | min_lstm | lru | rg_lru | transformer
    config.model.embed_size = 64  # token embedding width (recurrent models)
    config.model.hidden_size = 256  # recurrent state width H
    config.model.num_layers = 1  # stacked layers
    config.model.dropout = 0.0  # between layers and before the head
    config.model.fused = True  # hand-written BPTT kernel for full windows (same math, faster)
    config.model.scan = "auto"  # cells linear in the state: sequential | associative | chunked | log | auto
    config.model.block = "none"  # none: stacked layers | residual: the papers' pre-norm residual blocks
    config.model.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)

    config.optim = ml_collections.ConfigDict()
    config.optim.learning_rate = 2e-3  # peak learning rate after warmup
    config.optim.end_learning_rate = 2e-4  # learning rate at the end of the cosine decay
    config.optim.warmup_steps = 100  # linear warmup from 0
    config.optim.b1 = 0.9  # AdamW beta1
    config.optim.b2 = 0.99  # AdamW beta2
    config.optim.weight_decay = 0.0  # AdamW decoupled weight decay (matrices only)
    config.optim.grad_clip = 1.0  # global-norm gradient clipping (0 = off)

    config.mesh = ml_collections.ConfigDict()  # devices: see seqjax/training/sharding.py
    config.mesh.data = -1  # data-parallel devices (-1 = all devices not used by fsdp)
    config.mesh.fsdp = 1  # devices each large parameter is split over (1 = replicate all)
    config.mesh.fsdp_min_size = 2**14  # parameters with fewer elements stay replicated

    config.sample = ml_collections.ConfigDict()
    config.sample.prompt = "\n"  # prompt of the sample printed at the end of training
    config.sample.num_tokens = 300  # tokens in that sample
    config.sample.temperature = 0.8  # its sampling temperature
    return config


def transformer_model(num_layers=4, num_heads=4, width=128, dropout=0.0, use_bias=True):
    """The ``model`` section of a decoder-only Transformer (see seqjax.models.transformer_lm)."""
    model = ml_collections.ConfigDict()
    model.kind = "transformer"
    model.num_layers = num_layers  # decoder blocks
    model.num_heads = num_heads  # attention heads per block
    model.width = width  # residual stream width H
    model.mlp_ratio = 4  # MLP hidden width = mlp_ratio * H
    model.dropout = dropout  # on the embeddings and each residual branch's output
    model.use_bias = use_bias  # biases in Dense and LayerNorm layers
    model.tie_weights = True  # head shares the token embedding matrix
    model.positional = "learned"  # learned | sinusoidal | rotary
    model.attention_impl = "auto"  # auto (cuDNN where it runs) | reference | xla | cudnn
    model.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
    return model
