"""Where seqjax's loss on ``nanogpt_cpu.py`` parts from nanoGPT's: the batches or the training.

    python -m experiments.benchmarks.nanogpt_fidelity --nanogpt_dir=PATH --seeds=6

Four arms, each trained once per seed and scored on the same evaluation (seqjax's whole
validation split in contiguous windows, as in :mod:`experiments.benchmarks.nanogpt_end_to_end`):

- ``nanogpt``: nanoGPT's own ``train.py`` with its README's CPU command, seed ``1337 + k``,
  scored at its last step (``--always_save_checkpoint=True``; its Shakespeare config otherwise
  keeps the step its 20-batch estimate liked best);
- ``nanogpt_on_seqjax_batches``: the same ``train.py``, model, initialization (seed ``1337 + k``)
  and optimizer, but every training batch is seqjax's
  (:func:`seqjax.data.batching.random_windows` with seed ``k`` at each step), the batches
  ``nanogpt_cpu.py`` trains on with ``--config.seed=k``;
- ``seqjax_from_nanogpt_init``: seqjax's training of ``nanogpt_cpu.py`` with seed ``k`` (its
  batches), started from nanoGPT's initial weights of seed ``1337 + k``
  (:func:`nanogpt_initial_params`): the same start and batches as
  ``nanogpt_on_seqjax_batches``, so only the implementation of the model and update differs;
- ``seqjax``: ``experiments.train`` on ``nanogpt_cpu.py`` with seed ``k`` (evaluating only at
  the end: the evaluations draw nothing from the training's randomness, so the final model is
  the one of the full config).

If ``nanogpt_on_seqjax_batches`` sits with ``nanogpt``, the batches are not the cause; if
``seqjax_from_nanogpt_init`` then sits with it too, neither is the implementation, and what is
left is the initialization's random draw. The
report (JSON) has every loss, each arm's mean and standard error, and the paired differences.
Rounds run the arms one after the other in rotating order; ``--reuse=REPORT`` keeps the losses
of an earlier report's seeds and trains only the missing ones.
"""

import argparse
import json
import math
import os
import re
import shutil
import statistics
import sys
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp

from experiments.benchmarks.environment import describe_environment
from experiments.benchmarks.nanogpt_end_to_end import (
    prepare_nanogpt_data,
    run_nanogpt,
    run_seqjax,
    seeded_copy,
)
from experiments.benchmarks.nanogpt_torch import seqjax_params
from experiments.configs import nanogpt_cpu
from seqjax.training import train_and_evaluate
from seqjax.training.language_modeling import LanguageModeling

ARMS = ("nanogpt", "nanogpt_on_seqjax_batches", "seqjax_from_nanogpt_init", "seqjax")
# nanoGPT's train.py fetches its training batch twice: before the loop (step iter_num) and,
# inside it, the next step's while this one's gradients are computed (gradient_accumulation_steps
# is 1 in the CPU command). Its evaluation batches (estimate_loss) stay its own.
FIRST_FETCH = "X, Y = get_batch('train') # fetch the very first batch"
NEXT_FETCH = "        X, Y = get_batch('train')\n"
SEQJAX_BATCH = '''
from seqjax.data.batching import random_windows as _seqjax_random_windows


def seqjax_batch(step):
    """seqjax's training batch of ``step`` (seed $SEQJAX_BATCH_SEED) from nanoGPT's train.bin."""
    data = np.memmap(os.path.join(data_dir, 'train.bin'), dtype=np.uint16, mode='r')
    x, y = _seqjax_random_windows(data, batch_size=batch_size, seq_len=block_size,
                                  seed=int(os.environ['SEQJAX_BATCH_SEED']), step=step)
    return torch.from_numpy(x).long(), torch.from_numpy(y).long()
'''


def on_seqjax_batches(seeded_dir):
    """Rewrite ``seeded_dir/train.py`` (a :func:`seeded_copy`) to train on seqjax's batches."""
    train = Path(seeded_dir) / "train.py"
    source = train.read_text()
    if source.count(FIRST_FETCH) != 1 or source.count(NEXT_FETCH) != 1:
        sys.exit("nanogpt_fidelity: this nanoGPT's train.py fetches its batches in other lines "
                 "than the ones this benchmark replaces; use the nanoGPT commit the docs name")
    source = source.replace(FIRST_FETCH, SEQJAX_BATCH + "\nX, Y = seqjax_batch(iter_num)")
    source = source.replace(NEXT_FETCH, "        X, Y = seqjax_batch(iter_num + 1)\n")
    train.write_text(source)
    return seeded_dir


def nanogpt_initial_params(nanogpt_dir, torch_seed, config, vocab_size):
    """The weights nanoGPT's ``train.py`` starts from with ``torch.manual_seed(torch_seed)``
    (it seeds, then builds its ``GPT``), for ``config``'s model, as seqjax params."""
    import torch

    sys.path.insert(0, str(nanogpt_dir))
    from model import GPT, GPTConfig  # nanoGPT's model.py

    torch.manual_seed(torch_seed)
    model = GPT(GPTConfig(n_layer=config.model.num_layers, n_head=config.model.num_heads,
                          n_embd=config.model.width, block_size=config.seq_len,
                          vocab_size=vocab_size, dropout=0.0, bias=False))
    return seqjax_params(model.state_dict(), config.model.num_layers, config.model.num_heads)


def run_seqjax_from_nanogpt_init(folder, seed, nanogpt_dir):
    """``nanogpt_cpu.py`` with seed ``seed``, started from nanoGPT's weights of ``1337 + seed``;
    returns the final whole-split loss and the loss of the initial weights on the first batch
    (nanoGPT's log prints the same as ``iter 0``)."""
    config = nanogpt_cpu.get_config()
    config.update(seed=seed, eval_every=config.num_steps, progress_bar=False)
    probe = LanguageModeling(config, folder.with_name(folder.name + "_first_batch"))
    start = jax.tree.map(jnp.asarray, nanogpt_initial_params(
        nanogpt_dir, 1337 + seed, config, probe.data.tokenizer.vocab_size))
    shapes = jax.eval_shape(probe.init_params, jax.random.PRNGKey(0))
    layout = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
    if layout(start) != layout(shapes):
        sys.exit("nanogpt_fidelity: nanoGPT's weights do not map onto this TransformerLM's params")
    first_batch = probe.training_batch(0, slice(None))
    first_loss, _ = probe.loss(start, None, first_batch, jax.random.PRNGKey(0))
    with mock.patch.object(LanguageModeling, "init_params", lambda self, key: start):
        record = train_and_evaluate(config, folder)
    return {"val_loss": record["val_loss"], "first_batch_loss": float(first_loss)}


def run_arm(arm, seed, workdir, repo, directories):
    """One training run of ``arm`` with seed index ``seed``; returns what the report keeps."""
    folder = workdir / f"{arm}_{seed}"
    if arm == "seqjax_from_nanogpt_init":
        shutil.rmtree(folder, ignore_errors=True)
        return run_seqjax_from_nanogpt_init(folder, seed, directories["nanogpt"])
    if arm == "seqjax":
        last_step = nanogpt_cpu.get_config().num_steps
        result = run_seqjax(folder, repo, seed=seed, overrides=[f"--config.eval_every={last_step}"])
        return {"val_loss": result["final_val_loss_whole_split"], "wall_s": result["wall_s"]}
    environment = {"SEQJAX_BATCH_SEED": str(seed),
                   "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    # The final model: nanoGPT's Shakespeare config keeps only the checkpoint its 20-batch
    # estimate liked best, which is not always the last one.
    result = run_nanogpt(folder, directories[arm], 1337 + seed, environment, sample=False,
                         options=["--always_save_checkpoint=True"])
    first = re.search(r"iter 0: loss ([\d.]+)", Path(f"{folder}.train.log").read_text())
    return {"val_loss": result["whole_split_val_loss_of_ckpt"]["val_loss"],
            "checkpoint_step": result["whole_split_val_loss_of_ckpt"]["iter_num"],
            "first_batch_loss": float(first.group(1)), "wall_s": result["wall_s"]}


def summary(losses):
    """Mean, standard error and (for 2+ seeds) standard deviation of one arm's losses."""
    mean = statistics.fmean(losses)
    if len(losses) < 2:
        return {"n": len(losses), "mean": mean}
    stdev = statistics.stdev(losses)
    return {"n": len(losses), "mean": mean, "stdev": stdev,
            "standard_error": stdev / math.sqrt(len(losses))}


def compare(arms):
    """Each pair of arms: the difference of their means, and the mean of the per-seed
    differences (paired: ``nanogpt`` and ``nanogpt_on_seqjax_batches`` share seed ``k``'s
    initialization, ``nanogpt_on_seqjax_batches`` and ``seqjax`` its batches)."""
    stats = {name: summary([run["val_loss"] for run in runs.values()])
             for name, runs in arms.items() if runs}
    pairs = {}
    for first, second in ((a, b) for i, a in enumerate(ARMS) for b in ARMS[i + 1:]):
        if stats.get(first, {}).get("n", 0) < 2 or stats.get(second, {}).get("n", 0) < 2:
            continue
        error = math.hypot(stats[first]["standard_error"], stats[second]["standard_error"])
        difference = stats[second]["mean"] - stats[first]["mean"]
        common = sorted(set(arms[first]) & set(arms[second]), key=int)
        paired = summary([arms[second][k]["val_loss"] - arms[first][k]["val_loss"] for k in common])
        pairs[f"{second} - {first}"] = {"difference_of_means": difference, "standard_error": error,
                                        "per_seed": paired}
    return stats, pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt_dir", required=True, help="a checkout of karpathy/nanoGPT")
    parser.add_argument("--workdir", default="runs/nanogpt_fidelity")
    parser.add_argument("--seeds", type=int, default=6, help="seed indices 0..N-1 for every arm")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--reuse", default="", help="an earlier report whose runs are kept")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "nanogpt_fidelity.json"))
    args = parser.parse_args()
    repo, workdir = Path(__file__).resolve().parents[2], Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_nanogpt_data(Path(args.nanogpt_dir).resolve())
    seeded = workdir / "nanogpt_seeded"
    if not seeded.exists():
        seeded_copy(Path(args.nanogpt_dir).resolve(), seeded)
    on_batches = workdir / "nanogpt_on_seqjax_batches"
    if not on_batches.exists():
        on_seqjax_batches(seeded_copy(Path(args.nanogpt_dir).resolve(), on_batches))
    directories = {"nanogpt": seeded, "nanogpt_on_seqjax_batches": on_batches}
    arms = {name: {} for name in ARMS}
    if args.reuse:
        for name, runs in json.loads(Path(args.reuse).read_text())["arms"].items():
            arms[name].update(runs)
    wanted = args.arms.split(",")
    for seed in range(args.seeds):
        order = wanted[seed % len(wanted):] + wanted[:seed % len(wanted)]
        for arm in order:
            if str(seed) not in arms[arm]:
                arms[arm][str(seed)] = run_arm(arm, seed, workdir, repo, directories)
                print(arm, seed, json.dumps(arms[arm][str(seed)]), flush=True)
    stats, pairs = compare(arms)
    report = {"environment": describe_environment(), "arms": arms, "summary": stats,
              "differences": pairs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"summary": stats, "differences": pairs}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
