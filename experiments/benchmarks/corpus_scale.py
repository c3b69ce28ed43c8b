"""Setup time and peak memory of a training run against the size of its corpus.

Usage::

    python -m experiments.benchmarks.corpus_scale                        # 30 M, 120 M, 1 G chars
    python -m experiments.benchmarks.corpus_scale --sizes 2e6 --steps 2  # smoke run

For each size it writes one UTF-8 text of that many characters (the Python standard library's
source files, the ``python_stdlib_full`` corpus, repeated), then runs the quick-start LSTM on
it through ``experiments.train`` three times, each in its own process:

1. ``first``: a new run with an empty token cache (``SEQJAX_CACHE_DIR``), which tokenizes the
   corpus into token files;
2. ``new run``: another workdir, the token files already there;
3. ``resume``: the ``new run`` again with more steps, resuming from its checkpoint.

Each row has the run's setup time (``timing.json``: corpus, tokenizer, model and state up to
the first step; compilation apart), its wall time and its peak resident memory (``ru_maxrss``
of that process, from ``wait4``). Writes ``--out`` (JSON) and prints a markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.benchmarks.environment import describe_environment
from experiments.benchmarks.report import Report
from experiments.jemalloc import printed_malloc
from seqjax.data import python_stdlib_files

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "corpus_scale.json")
RUNS = ("first", "new run", "resume")


def write_corpus(path, num_chars):
    """``path``: the standard library's files, repeated, cut to ``num_chars`` characters."""
    if path.is_file() and path.stat().st_size >= num_chars:
        return path
    corpus, written = python_stdlib_files(), 0
    with open(path, "w", encoding="utf-8") as out:
        while written < num_chars:
            for text in corpus.texts(corpus.files):
                text = text[: num_chars - written]
                out.write(text)
                written += len(text)
                if written >= num_chars:
                    break
    return path


def run_training(corpus, workdir, cache_dir, num_steps):
    """``(timing.json, wall seconds, peak RSS bytes, malloc)`` of one ``experiments.train``
    process (its stdout goes to ``WORKDIR.log``)."""
    command = [sys.executable, "-m", "experiments.train",
               "--config=experiments/configs/quickstart.py", f"--workdir={workdir}",
               f"--config.data.corpus={corpus}", f"--config.num_steps={num_steps}",
               "--config.eval_every=1000000", "--config.checkpoint_every=1000000",
               "--config.sample.num_tokens=1", "--config.progress_bar=False"]
    environment = {**os.environ, "SEQJAX_CACHE_DIR": str(cache_dir)}
    log = Path(f"{workdir}.log")
    start = time.perf_counter()
    with open(log, "w") as stdout:
        process = subprocess.Popen(command, env=environment, stdout=stdout,
                                   stderr=subprocess.PIPE, text=True)
        stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"corpus_scale: training on {corpus} failed:\n{stderr[-2000:]}")
    timing = json.loads((Path(workdir) / "timing.json").read_text())
    malloc = printed_malloc(log.read_text())
    return timing, wall, usage.ru_maxrss * 1024, malloc  # Linux reports KiB


def measure(size, folder, steps):
    corpus = write_corpus(folder / f"corpus_{size}.txt", size)
    cache_dir = Path(tempfile.mkdtemp(prefix="cache_", dir=folder))
    rows = []
    for name, workdir, num_steps in (("first", "run_a", steps), ("new run", "run_b", steps),
                                     ("resume", "run_b", 2 * steps)):
        timing, wall, rss, malloc = run_training(corpus, folder / f"{size}_{workdir}",
                                                 cache_dir, num_steps)
        rows.append({"characters": size, "corpus_bytes": corpus.stat().st_size, "run": name,
                     "setup_s": timing["setup_s"], "compile_s": timing["compile_s"],
                     "wall_s": round(wall, 2), "peak_rss_bytes": rss, "malloc": malloc})
        print(f"{size:,} chars, {name}: setup {timing['setup_s']:.2f} s, "
              f"peak RSS {rss / 2**30:.2f} GiB", file=sys.stderr, flush=True)
    return rows


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="30e6,120e6,1e9", help="comma-separated characters")
    parser.add_argument("--steps", type=int, default=20, help="training steps of a new run")
    parser.add_argument("--folder", default=None,
                        help="where the corpora, caches and runs go (default: a new temporary one)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    args = parser.parse_args(argv)
    args.sizes = [int(float(size)) for size in args.sizes.split(",") if size]
    return args


def main(argv=None):
    args = parse_args(argv)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="seqjax_corpus_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, "corpus_scale", describe_environment(),
                    {"config": "experiments/configs/quickstart.py", "steps": args.steps})
    for size in args.sizes:
        report.add_rows(measure(size, folder, args.steps))
    report = report.finish()
    print("| characters | run | setup s | wall s | peak RSS GiB |\n|---|---|---|---|---|")
    for row in report["rows"]:
        print(f"| {row['characters']:,} | {row['run']} | {row['setup_s']:.2f} | "
              f"{row['wall_s']:.1f} | {row['peak_rss_bytes'] / 2**30:.2f} |")
    return report


if __name__ == "__main__":
    main()
