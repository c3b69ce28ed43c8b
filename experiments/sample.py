"""Continue a prompt with a trained run's best (or latest) checkpoint.

    python -m experiments.sample --workdir=runs/quickstart --prompt="def " --num_tokens=200 \\
        --temperature=0.8 --top_k=20 --top_p=0.95 --seed=0

    python -m experiments.sample --workdir=runs/quickstart --prompt="def " --beam_size=4

``--temperature=0`` is greedy decoding; ``--beam_size`` searches for the most likely
continuation instead of sampling (and prints its log-probability on stderr). A Transformer
generates any number of tokens by sliding its context window (``--refill_length``);
``--checkpoint=latest`` samples from the last saved checkpoint instead of the best one.
"""

import sys

from absl import app, flags, logging

from experiments.cli_errors import flags_parser, user_errors_as_messages
from experiments.compilation_cache import enable_compilation_cache
from seqjax.text_generation import PromptError, beam_text, continue_text, load_run

flags.DEFINE_string("workdir", None, "Run directory written by experiments.train.")
flags.DEFINE_string("prompt", "\n", "Text to continue.")
flags.DEFINE_integer("num_tokens", 200, "Tokens to generate.", lower_bound=1)
flags.DEFINE_float("temperature", 1.0, "Sampling temperature; 0 is greedy.", lower_bound=0.0)
flags.DEFINE_integer("top_k", None, "Sample among the k most likely tokens.", lower_bound=1)
flags.DEFINE_float("top_p", None, "Nucleus sampling mass in (0, 1].", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_integer("beam_size", None, "Beam search with this many beams (1 is greedy) "
                     "instead of sampling.", lower_bound=1)
flags.DEFINE_integer("refill_length", None, "Transformers: how many tokens the sliding context "
                     "window keeps when it is full (default half the context; context - 1 is "
                     "nanoGPT's rule). Left out, rotary positions slide a ring-buffer cache "
                     "over the last context tokens instead.", lower_bound=1)
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint: the lowest "
                  "validation loss, or the last one saved.")
flags.mark_flag_as_required("workdir")
SAMPLING_FLAGS = ("temperature", "top_k", "top_p", "seed")


def check_beam_options(f):
    """Beam search samples nothing: a sampling flag beside ``--beam_size`` is a mistake."""
    given = [f"--{name}" for name in SAMPLING_FLAGS if f[name].present]
    if f.beam_size is not None and given:
        raise PromptError(f"beam search samples nothing, so {' '.join(given)} would be ignored: "
                          f"remove {'them' if len(given) > 1 else 'it'}, or remove --beam_size to "
                          "sample instead")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    f = flags.FLAGS
    enable_compilation_cache(f.compilation_cache)
    with user_errors_as_messages("sample"):
        check_beam_options(f)
        run = load_run(f.workdir, f.checkpoint)
        if f.beam_size is not None:
            text, log_prob = beam_text(run, f.prompt, f.num_tokens, f.beam_size,
                                       refill_length=f.refill_length)
            print(text)
            print(f"log-probability of the continuation: {log_prob:.4f}", file=sys.stderr)
            return
        print(continue_text(run, f.prompt, f.num_tokens, temperature=f.temperature,
                            top_k=f.top_k, top_p=f.top_p, seed=f.seed,
                            refill_length=f.refill_length))


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser("sample"))
