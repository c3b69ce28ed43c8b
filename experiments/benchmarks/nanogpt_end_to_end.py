"""End to end, start to finished sample: ``nanogpt_cpu.py`` beside nanoGPT's own CPU run.

    python -m experiments.benchmarks.nanogpt_end_to_end --nanogpt_dir=PATH --workdir=runs/e2e

``PATH`` is a checkout of https://github.com/karpathy/nanoGPT; its ``shakespeare_char`` data is
prepared from our copy of Tiny Shakespeare (``$SEQJAX_DATA_DIR``), so nothing is downloaded.
Each round runs both jobs one after the other (the order alternates between rounds), in fresh
folders and without a compilation cache, as a new user would, and times each command from
start to exit (``--warm`` adds two seqjax runs with a compilation cache, the default of
``experiments.train``: a first one that fills it and a warm one that reads it; ``--vary_seeds``
makes round ``k`` use seqjax's seed ``k`` and nanoGPT's seed ``1337 + k``):

- seqjax: ``python -m experiments.train --config=experiments/configs/nanogpt_cpu.py``, which
  ends by printing its config's sample (300 characters, past the 64-character window, which
  slides); its ``timing.json`` says where the time went;
- nanoGPT: ``train.py`` with the command of its README's CPU run, then ``sample.py`` for one
  sample of the same length.

Both final models are also scored on the same evaluation, seqjax's: the whole validation split
in contiguous windows (:func:`seqjax.training.language_modeling.evaluate`); nanoGPT's own
``ckpt.pt`` through its own ``model.py``. The report (JSON) records the machine.
"""

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from experiments.benchmarks.environment import describe_environment
from experiments.configs import nanogpt_cpu
from experiments.jemalloc import printed_malloc
from seqjax.data import num_stream_windows, stream_windows
from seqjax.data.corpora import resolve_data_dir

NANOGPT_TRAIN = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
                 "--eval_iters=20", "--log_interval=1", "--block_size=64", "--batch_size=12",
                 "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
                 "--lr_decay_iters=2000", "--dropout=0.0"]
SAMPLE = nanogpt_cpu.get_config().sample  # nanoGPT's sample.py prints one of the same length


def timed(command, cwd, log, environment=None):
    """Run ``command``; returns its wall seconds and stdout (both streams go to ``log`` too)."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **(environment or {})})
    seconds = time.perf_counter() - start
    Path(log).write_text(result.stdout + "\n--- stderr ---\n" + result.stderr)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed (exit {result.returncode}); see {log}")
    return seconds, result.stdout


def prepare_nanogpt_data(nanogpt_dir):
    data_dir = Path(nanogpt_dir) / "data" / "shakespeare_char"
    if not (data_dir / "val.bin").exists():
        shutil.copy(Path(resolve_data_dir()) / "tinyshakespeare.txt", data_dir / "input.txt")
        subprocess.run([sys.executable, "prepare.py"], cwd=data_dir, check=True, capture_output=True)
    return data_dir


def run_seqjax(workdir, repo, compilation_cache="", seed=0, overrides=()):
    """One training run; ``compilation_cache``: JAX's cache folder ("" turns it off);
    ``overrides``: more ``--config.KEY=VALUE`` flags."""
    seconds, stdout = timed(
        [sys.executable, "-m", "experiments.train", "--config=experiments/configs/nanogpt_cpu.py",
         f"--workdir={workdir}", f"--compilation_cache={compilation_cache}",
         f"--config.seed={seed}", "--config.progress_bar=False", *overrides],
        repo, f"{workdir}.log")
    final = json.loads((Path(workdir) / "metrics.jsonl").read_text().splitlines()[-1])
    return {"wall_s": round(seconds, 2), "malloc": printed_malloc(stdout),
            "timing": json.loads((Path(workdir) / "timing.json").read_text()),
            "final_val_loss_whole_split": final["val_loss"]}


SEED_LINE = "torch.manual_seed(1337 + seed_offset)"


def seeded_copy(nanogpt_dir, destination):
    """A copy of nanoGPT whose ``train.py`` seeds from ``$NANOGPT_SEED`` (default 1337): it has
    no seed option of its own (its configurator runs before ``seed_offset`` is set)."""
    shutil.copytree(nanogpt_dir, destination, ignore=shutil.ignore_patterns(".git"))
    train = Path(destination) / "train.py"
    source = train.read_text()
    if SEED_LINE not in source:
        sys.exit(f"nanogpt_end_to_end: {nanogpt_dir}/train.py has no line {SEED_LINE!r} to seed "
                 "from; run without --vary_seeds, or with the nanoGPT commit the docs name")
    train.write_text(source.replace(SEED_LINE, 'torch.manual_seed(int(os.environ.get('
                                    '"NANOGPT_SEED", 1337)) + seed_offset)'))
    return Path(destination)


def run_nanogpt(out_dir, nanogpt_dir, seed=1337, environment=None, sample=True, options=()):
    """``train.py`` (seed ``seed`` where ``nanogpt_dir`` is a :func:`seeded_copy`), then
    ``sample.py`` unless ``sample`` is False; ``environment``: more variables for ``train.py``,
    ``options``: more of its flags."""
    train_s, stdout = timed([sys.executable, "train.py", *NANOGPT_TRAIN, *options,
                             f"--out_dir={out_dir}"],
                            nanogpt_dir, f"{out_dir}.train.log",
                            {"NANOGPT_SEED": str(seed), **(environment or {})})
    if not sample:
        return {"train_wall_s": round(train_s, 2), "wall_s": round(train_s, 2),
                "whole_split_val_loss_of_ckpt": whole_split_loss(out_dir, nanogpt_dir)}
    sample_s, _ = timed([sys.executable, "sample.py", f"--out_dir={out_dir}", "--device=cpu",
                         "--compile=False", "--num_samples=1",
                         f"--max_new_tokens={SAMPLE.num_tokens}",
                         f"--start={SAMPLE.prompt}"], nanogpt_dir, f"{out_dir}.sample.log")
    estimates = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", stdout)
    return {"train_wall_s": round(train_s, 2), "sample_wall_s": round(sample_s, 2),
            "wall_s": round(train_s + sample_s, 2),
            "final_val_estimate_20_batches": float(estimates[-1][2]),
            "whole_split_val_loss_of_ckpt": whole_split_loss(out_dir, nanogpt_dir)}


def whole_split_loss(out_dir, nanogpt_dir):
    """nanoGPT's saved model (its best by its own estimate) on seqjax's evaluation windows."""
    import torch

    sys.path.insert(0, str(nanogpt_dir))
    from model import GPT, GPTConfig  # nanoGPT's model.py

    checkpoint = torch.load(Path(out_dir) / "ckpt.pt", map_location="cpu")
    model = GPT(GPTConfig(**checkpoint["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in checkpoint["model"].items()})
    model.eval()
    val = np.fromfile(Path(nanogpt_dir) / "data/shakespeare_char/val.bin", dtype=np.uint16).astype(np.int64)
    total, count = 0.0, 0
    with torch.no_grad():
        for k in range(num_stream_windows(len(val), 12, 64)):
            inputs, targets, _ = stream_windows(val, batch_size=12, seq_len=64, step=k)
            _, loss = model(torch.from_numpy(inputs).long(), torch.from_numpy(targets).long())
            total, count = total + float(loss) * targets.size, count + targets.size
    return {"val_loss": total / count, "iter_num": int(checkpoint["iter_num"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt_dir", required=True, help="a checkout of karpathy/nanoGPT")
    parser.add_argument("--workdir", default="runs/nanogpt_end_to_end")
    parser.add_argument("--nanogpt_commit", default="", help="recorded in the report")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warm", action="store_true",
                        help="also run seqjax twice with a compilation cache: the first run "
                             "fills it, the second (warm) reads it")
    parser.add_argument("--vary_seeds", action="store_true",
                        help="round k trains seqjax with seed k and nanoGPT with seed 1337 + k (a "
                             "copy of nanoGPT whose train.py reads $NANOGPT_SEED)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "nanogpt_end_to_end.json"))
    args = parser.parse_args()
    repo, nanogpt_dir = Path(__file__).resolve().parents[2], Path(args.nanogpt_dir).resolve()
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    data_dir = prepare_nanogpt_data(nanogpt_dir)
    meta = pickle.loads((data_dir / "meta.pkl").read_bytes())
    if args.vary_seeds:
        nanogpt_dir = seeded_copy(nanogpt_dir, workdir / "nanogpt_seeded")
    rounds = []
    for index in range(args.rounds):
        seed = index if args.vary_seeds else 0
        jobs = {"seqjax": lambda: run_seqjax(workdir / f"seqjax_{index}", repo, seed=seed),
                "nanogpt": lambda: run_nanogpt(workdir / f"nanogpt_{index}", nanogpt_dir,
                                               1337 + seed)}
        if args.warm:  # a first run fills a compilation cache, the second one reads it
            cache = workdir / f"compilation_cache_{index}"
            jobs["seqjax_first_with_cache"] = lambda: run_seqjax(
                workdir / f"seqjax_first_{index}", repo, cache, seed)
            jobs["seqjax_warm"] = lambda: run_seqjax(workdir / f"seqjax_warm_{index}", repo,
                                                     cache, seed)
        order = ["seqjax", "nanogpt"] if index % 2 == 0 else ["nanogpt", "seqjax"]
        order += [name for name in jobs if name not in order]  # the warm pair, in its order
        rounds.append({"order": order, "seqjax_seed": seed, "nanogpt_seed": 1337 + seed,
                       **{name: jobs[name]() for name in order}})
        print(json.dumps(rounds[-1], indent=1))
    report = {"environment": describe_environment(), "nanogpt_commit": args.nanogpt_commit,
              "vocab_size": meta["vocab_size"], "rounds": rounds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
