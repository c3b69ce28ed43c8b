"""Text in, text out: load a trained run from its workdir and continue a prompt.

A run directory holds ``config.json``, ``tokenizer.json`` and ``checkpoints/`` (written by
:func:`seqjax.training.train_and_evaluate`); this module rebuilds the model from them and
samples through :func:`seqjax.generation.generate` (or searches through
:func:`seqjax.generation.beam_search`), one compiled ``lax.scan``.
"""

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections

from seqjax.training.checkpoints import RunCheckpoints
from seqjax.data import load_tokenizer
from seqjax.errors import CheckpointMismatchError, SeqjaxError
from seqjax.generation import (
    beam_search, check_sampling_options, fed_length, generate, model_step_fn,
)
from seqjax.models import build_model


class PromptError(SeqjaxError, ValueError):
    """The prompt or the decoding options do not fit this model (an empty prompt, a sliding
    window's refill length outside the context, a sampling option out of range, fewer than one
    token or beam)."""


@dataclass(frozen=True)
class TrainedRun:
    config: ml_collections.ConfigDict
    tokenizer: object
    model: object
    params: dict
    record: dict  # step and validation loss of the loaded checkpoint


def load_run(workdir, which="best"):
    """The ``best`` (or ``latest``) checkpoint of the run in ``workdir``, with its tokenizer and
    model. Damaged checkpoint files are an :class:`~seqjax.errors.UnreadableCheckpointError`
    that names the fix (for a damaged best checkpoint: the latest one)."""
    workdir = Path(workdir)
    if not (workdir / "config.json").exists() or not (workdir / "tokenizer.json").exists():
        raise CheckpointMismatchError(
            f"{workdir} holds no training run (no config.json/tokenizer.json): pass the --workdir "
            "of a run made by python -m experiments.train"
        )
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    tokenizer = load_tokenizer(workdir)
    model = build_model(config.model, tokenizer.vocab_size, config.seq_len)
    tokens = jnp.zeros((1, 1), jnp.int32)
    target = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens, model.initial_carry(1))
    with RunCheckpoints(workdir / "checkpoints") as checkpoints:
        params, record = checkpoints.restore_best(
            target["params"], which,
            use_latest=f"python -m experiments.sample --workdir={workdir} --checkpoint=latest")
    return TrainedRun(config, tokenizer, model, params, record)


@partial(jax.jit, static_argnames=("model", "num_tokens", "temperature", "top_k", "top_p",
                                   "window"))
def _continue_tokens(model, params, prompt, key, *, num_tokens, temperature, top_k, top_p,
                     window):
    state = model.init_decode_state(prompt.shape[0], fed_length(prompt.shape[1], num_tokens),
                                    **dict(window))
    step_fn = model_step_fn(model, {"params": params})
    return generate(step_fn, state, prompt, num_tokens, key,
                    temperature=temperature, top_k=top_k, top_p=top_p)


def _window_options(run, refill_length, total_length):
    """``init_decode_state``'s sliding-window options, checked: a Transformer's only (an RNN's
    state carries the whole past)."""
    if run.config.model.kind != "transformer":
        if refill_length is not None:
            raise PromptError(
                f"refill_length applies to Transformers (their sliding context window), not "
                f"to a {run.config.model.kind} model: leave it out"
            )
        return ()
    if refill_length is not None or total_length > run.model.context_length:
        try:
            refill_length = run.model.checked_refill_length(refill_length)
        except ValueError as error:
            raise PromptError(str(error)) from None
    return () if refill_length is None else (("refill_length", refill_length),)


def _prompt_ids(run, prompt, num_tokens):
    """``int32 [P]``: the tokens of a non-empty ``prompt``, to be continued by ``num_tokens``."""
    if not prompt:
        raise PromptError("the prompt is empty: give at least one character, e.g. --prompt='\\n'")
    if num_tokens < 1:
        raise PromptError(f"num_tokens is {num_tokens}: generate at least 1 token")
    return jnp.asarray(run.tokenizer.encode(prompt), jnp.int32)


def continue_text(run, prompt, num_tokens, *, temperature=1.0, top_k=None, top_p=None, seed=0,
                  refill_length=None):
    """``prompt`` followed by ``num_tokens`` sampled tokens, as text (temperature 0: greedy).

    A Transformer generates past its context window by sliding it
    (:meth:`seqjax.models.transformer_lm.TransformerLM.init_decode_state`); ``refill_length``
    is how many tokens the window keeps when it is full (default half the context; rotary
    positions default to a ring-buffer cache over the last ``context_length`` tokens).
    """
    try:
        check_sampling_options(temperature, top_k, top_p)
    except ValueError as error:
        raise PromptError(str(error)) from None
    ids = _prompt_ids(run, prompt, num_tokens)[None, :]
    tokens = _continue_tokens(
        run.model, run.params, ids, jax.random.PRNGKey(seed), num_tokens=num_tokens,
        temperature=float(temperature), top_k=top_k, top_p=top_p,
        window=_window_options(run, refill_length, fed_length(ids.shape[1], num_tokens)),
    )
    return prompt + run.tokenizer.decode(tokens[0])


@partial(jax.jit, static_argnames=("model", "num_tokens", "beam_size", "window"))
def _beam_tokens(model, params, prompt, *, num_tokens, beam_size, window):
    state = model.init_decode_state(beam_size, fed_length(prompt.shape[0], num_tokens),
                                    **dict(window))
    step_fn = model_step_fn(model, {"params": params})
    return beam_search(step_fn, state, prompt, num_tokens, beam_size)


def beam_text(run, prompt, num_tokens, beam_size, *, refill_length=None):
    """``(text, log_prob)``: ``prompt`` followed by the most likely ``num_tokens``-token
    continuation that beam search with ``beam_size`` beams finds, and its log-probability
    (natural log; one beam is greedy decoding). A Transformer's window slides as in
    :func:`continue_text`.
    """
    if beam_size < 1:
        raise PromptError(f"beam_size is {beam_size}: search with at least 1 beam")
    ids = _prompt_ids(run, prompt, num_tokens)
    tokens, log_prob = _beam_tokens(
        run.model, run.params, ids, num_tokens=num_tokens, beam_size=beam_size,
        window=_window_options(run, refill_length, fed_length(ids.shape[0], num_tokens)),
    )
    return prompt + run.tokenizer.decode(tokens), float(log_prob)
