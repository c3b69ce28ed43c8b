"""A faithful mirror of nanoGPT's published CPU run of ``train_shakespeare_char`` so the two compare.

nanoGPT's command (its README): ``python train.py config/train_shakespeare_char.py --device=cpu
--compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``, which it reports
reaching a validation loss of 1.88. Same model (4 layers, 4 heads, width 128, context 64, no
biases, tied embedding, dropout 0), same optimizer (AdamW lr 1e-3, 100 warmup steps, cosine decay to
1e-4, beta2 0.99, weight decay 0.1 on matrices, clip 1.0), same data (characters of Tiny
Shakespeare, first 90% train, random windows). One difference: our validation loss is over the whole
validation split, nanoGPT's the mean of 20 random batches.
"""

from experiments.configs.defaults import base_config, transformer_model


def get_config():
    config = base_config()
    config.num_steps = 2000
    config.batch_size = 12
    config.seq_len = 64  # block_size: the context window
    config.log_every = 50
    config.eval_every = 250
    config.eval_batches = 0  # the whole validation split
    config.checkpoint_every = 250
    config.data.corpus = "tiny_shakespeare"
    config.data.tokenizer = "char"
    config.data.batching = "random"
    config.model = transformer_model(num_layers=4, num_heads=4, width=128, dropout=0.0, use_bias=False)
    config.optim.learning_rate = 1e-3
    config.optim.end_learning_rate = 1e-4
    config.optim.warmup_steps = 100
    config.optim.b1 = 0.9
    config.optim.b2 = 0.99
    config.optim.weight_decay = 0.1
    config.optim.grad_clip = 1.0
    config.sample.prompt = "ROMEO:"
    config.sample.num_tokens = 300  # past the context window, which slides
    return config
