"""Continue a prompt with a trained run's best (or latest) checkpoint.

    python -m experiments.sample --workdir=runs/quickstart --prompt="def " --num_tokens=200 \\
        --temperature=0.8 --top_k=20 --top_p=0.95 --seed=0

``--temperature=0`` is greedy decoding; a Transformer generates any number of tokens by sliding
its context window (``--refill_length``); ``--checkpoint=latest`` samples from the last saved
checkpoint instead of the best one.
"""

from absl import app, flags, logging

from experiments.cli_errors import flags_parser, user_errors_as_messages
from experiments.compilation_cache import enable_compilation_cache
from seqjax.text_generation import continue_text, load_run

flags.DEFINE_string("workdir", None, "Run directory written by experiments.train.")
flags.DEFINE_string("prompt", "\n", "Text to continue.")
flags.DEFINE_integer("num_tokens", 200, "Tokens to generate.", lower_bound=1)
flags.DEFINE_float("temperature", 1.0, "Sampling temperature; 0 is greedy.", lower_bound=0.0)
flags.DEFINE_integer("top_k", None, "Sample among the k most likely tokens.", lower_bound=1)
flags.DEFINE_float("top_p", None, "Nucleus sampling mass in (0, 1].", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_integer("refill_length", None, "Transformers: how many tokens the sliding context "
                     "window keeps when it is full (default half the context; context - 1 is "
                     "nanoGPT's rule).", lower_bound=1)
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint: the lowest "
                  "validation loss, or the last one saved.")
flags.mark_flag_as_required("workdir")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    f = flags.FLAGS
    enable_compilation_cache(f.compilation_cache)
    with user_errors_as_messages("sample"):
        run = load_run(f.workdir, f.checkpoint)
        print(continue_text(run, f.prompt, f.num_tokens, temperature=f.temperature,
                            top_k=f.top_k, top_p=f.top_p, seed=f.seed,
                            refill_length=f.refill_length))


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser("sample"))
