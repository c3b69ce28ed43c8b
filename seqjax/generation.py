"""Decoding for every language model, over one step function.

A model is seen only through ``step_fn(state, token [B]) -> (logits [B, V], state)``: feed one
token, get the next-token logits (for a model, :func:`model_step_fn`). ``state`` is a pytree
whose leaves carry the batch on axis 0, except 0-d leaves (such as the Transformer's
``position``), which all rows share; :func:`beam_search` reorders the batched leaves. It is a
scan's carry, so ``step_fn`` returns it with the structure and dtypes it was given.

Everything here is pure and built from ``jax.lax.scan``, so it compiles into one program.
Jit it with the model variables as an argument (not baked into the closure)::

    @functools.partial(jax.jit, static_argnames="num_tokens")
    def sample(variables, prompt, key, num_tokens):
        batch_size, max_length = prompt.shape[0], fed_length(prompt.shape[1], num_tokens)
        state = model.apply(variables, batch_size, max_length, method="init_decode_state")
        step_fn = model_step_fn(model, variables)
        return generate(step_fn, state, prompt, num_tokens, key, temperature=0.8, top_k=10)

``temperature``, ``top_k``, ``top_p``, ``num_tokens`` and ``beam_size`` are Python numbers.
"""

from functools import partial

import jax
import jax.numpy as jnp

from seqjax.losses import token_cross_entropy


def model_step_fn(model, variables):
    """``step_fn(state, token)`` running ``model.decode_step`` with ``variables``."""
    def step_fn(state, token):
        return model.apply(variables, state, token, method="decode_step")

    return step_fn


def check_sampling_options(temperature, top_k, top_p):
    """Raise a ``ValueError`` naming the range of the first option out of it."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None (no filtering), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None (no filtering), got {top_p}")


def top_k_filter(logits, top_k):
    """Keep the ``top_k`` largest logits of ``[..., V]`` (ties at the cut too), others ``-inf``."""
    kth_largest = jax.lax.top_k(logits, top_k)[0][..., -1:]
    return jnp.where(logits >= kth_largest, logits, -jnp.inf)


def top_p_filter(logits, top_p):
    """Nucleus filter: keep the smallest set of most likely tokens with probability ``>= top_p``.

    Sorted by probability, token ``i`` is kept while the mass before it is ``< top_p`` (the
    most likely token always stays); the rest get ``-inf``. ``logits: [..., V]``.
    """
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    sorted_probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs
    kept = mass_before < top_p
    smallest_kept = jnp.min(jnp.where(kept, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits >= smallest_kept, logits, -jnp.inf)


def sample_next(key, logits, *, temperature=1.0, top_k=None, top_p=None):
    """Sample token ids ``[...]`` from ``logits: [..., V]``.

    The logits are divided by ``temperature``, then filtered by ``top_k``, then by ``top_p``
    (on the renormalised top-k distribution). ``temperature=0`` is greedy ``argmax``.
    """
    check_sampling_options(temperature, top_k, top_p)
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / temperature
    if top_k is not None:
        logits = top_k_filter(logits, min(top_k, logits.shape[-1]))
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _checked_prompt(prompt):
    """``prompt`` as int32 ``[B, P]``, ``P >= 1`` (else a ``ValueError``)."""
    if prompt.ndim != 2 or prompt.shape[1] == 0:
        raise ValueError(
            f"prompt must be int32 [batch, length] with length >= 1, got shape {prompt.shape}: "
            "start from at least one token (e.g. a newline or a BOS id)"
        )
    return jnp.asarray(prompt, jnp.int32)


def _no_logits(step_fn, state, prompt):
    """Zeros shaped like ``step_fn``'s logits: a scan's carry before its first step, so that
    the model has one copy in the compiled program (``eval_shape`` traces it once more, but
    compiles nothing)."""
    logits = jax.eval_shape(step_fn, state, prompt[:, 0])[0]
    return jnp.zeros(logits.shape, logits.dtype)


def _fed_tokens(prompt, num_tokens):
    """A decoding scan's inputs: ``(t, prompt's token t or padding past it [B])`` for each of
    the :func:`fed_length` tokens fed (a token past the prompt is decided inside the scan)."""
    fed_count = fed_length(prompt.shape[1], num_tokens)
    given = jnp.pad(prompt.T, ((0, fed_count - prompt.shape[1]), (0, 0)))  # [fed_count, B]
    return jnp.arange(fed_count), given


def feed_prompt(step_fn, state, prompt):
    """Run ``prompt: int32 [B, P]`` (``P >= 1``) through ``step_fn``; returns
    ``(logits for the token after the prompt [B, V], state)``."""
    prompt = _checked_prompt(prompt)

    def feed(carry, token):
        state, _ = carry
        logits, state = step_fn(state, token)
        return (state, logits), None

    (state, logits), _ = jax.lax.scan(
        feed, (state, _no_logits(step_fn, state, prompt)), prompt.T)
    return logits, state


def fed_length(prompt_length, num_tokens):
    """How many tokens decoding feeds ``step_fn`` to continue a prompt by ``num_tokens``: the
    prompt and every new token but the last (the size a decode state needs)."""
    return prompt_length + num_tokens - 1


def generate(step_fn, state, prompt, num_tokens, key, *, temperature=1.0, top_k=None,
             top_p=None):
    """Continue ``prompt: int32 [B, P]`` by ``num_tokens`` sampled tokens -> ``[B, num_tokens]``.

    ``state`` must have room for :func:`fed_length` ``(P, num_tokens)`` tokens: ``step_fn``
    reads the prompt and every sampled token but the last, which nothing follows. Sampling
    options as :func:`sample_next`; token ``i`` is drawn with
    ``jax.random.split(key, num_tokens)[i]``.

    The prompt and the sampled tokens are fed by one scan, so the model is compiled once: fed
    token ``t`` is ``prompt[:, t]`` for ``t < P``, else drawn from the logits of token ``t - 1``
    (a draw at ``t < P`` is discarded).
    """
    check_sampling_options(temperature, top_k, top_p)
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
    prompt = _checked_prompt(prompt)
    prompt_length = prompt.shape[1]
    keys = jax.random.split(key, num_tokens)
    sample = partial(sample_next, temperature=temperature, top_k=top_k, top_p=top_p)

    def feed(carry, inputs):
        state, logits = carry
        t, given = inputs  # given: the prompt's token t, or padding past the prompt
        drawn = sample(keys[jnp.maximum(t - prompt_length, 0)], logits)
        token = jnp.where(t < prompt_length, given, drawn)
        logits, state = step_fn(state, token)
        return (state, logits), token

    (_, logits), fed = jax.lax.scan(
        feed, (state, _no_logits(step_fn, state, prompt)), _fed_tokens(prompt, num_tokens))
    last = sample(keys[-1], logits)
    return jnp.concatenate([fed[prompt_length:].T, last[:, None]], axis=1)


def teacher_forced_losses(step_fn, state, tokens):
    """The loss of every next token of a text, as ``step_fn``'s decoding rule predicts it:

    .. math::

        \\ell_t = -\\log p(x_{t+1} \\mid x_1 \\ldots x_t), \\qquad t = 1 \\ldots T - 1,

    with ``p`` read from the logits ``step_fn`` returns after feeding ``x_t`` (for a
    Transformer past its context, what the sliding window still sees). ``tokens: int32
    [B, T]``; ``state`` has room for ``T - 1`` tokens. Returns float32 ``[B, T - 1]``.
    """
    def feed(state, inputs):
        token, target = inputs
        logits, state = step_fn(state, token)
        return state, token_cross_entropy(logits, target)

    _, losses = jax.lax.scan(feed, state, (tokens[:, :-1].T, tokens[:, 1:].T))
    return losses.T


def reorder_beams(state, beam_indices):
    """Gather every batched leaf of ``state`` (ndim >= 1) along axis 0; 0-d leaves are shared."""
    return jax.tree.map(lambda leaf: leaf if leaf.ndim == 0 else leaf[beam_indices], state)


def _beam_candidates(scores, lengths, finished, log_probs, eos_id, length_penalty):
    """Scores, lengths and ranking keys of all ``beam x token`` extensions, each ``[K, V]``.

    A finished beam has one extension, ``eos_id`` again, which keeps its score and length.
    Candidates rank by ``score / length ** length_penalty``.
    """
    vocab_size = log_probs.shape[-1]
    is_eos = jnp.arange(vocab_size) == eos_id
    stay_finished = jnp.where(is_eos, 0.0, -jnp.inf)
    step_log_probs = jnp.where(finished[:, None], stay_finished, log_probs)
    candidate_scores = scores[:, None] + step_log_probs
    candidate_lengths = jnp.broadcast_to(
        lengths[:, None] + jnp.where(finished[:, None], 0, 1), log_probs.shape
    )
    ranking = candidate_scores / candidate_lengths.astype(jnp.float32) ** length_penalty
    return candidate_scores, candidate_lengths, ranking


def _expand_and_prune(beams, logits, t, eos_id, length_penalty):
    """Extend every beam by every token and keep the ``beam_size`` best as token ``t``:
    ``(beams, parent [K], token [K])``."""
    beam_size = beams["scores"].shape[0]
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    candidate_scores, candidate_lengths, ranking = _beam_candidates(
        beams["scores"], beams["lengths"], beams["finished"], log_probs, eos_id, length_penalty
    )
    _, flat_best = jax.lax.top_k(ranking.reshape(-1), beam_size)
    parent, token = jnp.divmod(flat_best, log_probs.shape[-1])
    token = token.astype(jnp.int32)
    beams = {
        "scores": candidate_scores.reshape(-1)[flat_best],
        "lengths": candidate_lengths.reshape(-1)[flat_best],
        "finished": beams["finished"][parent] | (token == eos_id),
        "tokens": beams["tokens"][parent].at[:, t].set(token),
    }
    return beams, parent, token


def beam_search(step_fn, state, prompt, num_tokens, beam_size, *, length_penalty=0.0,
                eos_id=None):
    """The most likely continuation of ``prompt: int32 [P]`` found by beam search.

    ``state`` is a decode state for a batch of ``beam_size`` (one row per beam) with room for
    :func:`fed_length` ``(P, num_tokens)`` tokens. Each step extends every beam by every
    token and keeps the ``beam_size`` best by ``log p(continuation) / length **
    length_penalty``; with ``eos_id``, a beam that emits it is finished (its length stops,
    later tokens are ``eos_id``), so ``length_penalty > 0`` favours longer continuations.
    Returns ``(tokens [num_tokens], that ranking score)``.
    """
    if prompt.ndim != 1:
        raise ValueError(f"beam_search takes one prompt [length], got shape {prompt.shape}")
    if beam_size < 1 or num_tokens < 1:
        raise ValueError(f"need beam_size >= 1 and num_tokens >= 1, got {beam_size}, {num_tokens}")
    eos_id = -1 if eos_id is None else eos_id  # -1: no token ends a beam
    expand = partial(_expand_and_prune, eos_id=eos_id, length_penalty=length_penalty)
    prompt = _checked_prompt(jnp.tile(prompt, (beam_size, 1)))  # [K, P], one row per beam
    prompt_length = prompt.shape[1]
    # All beams start identical: only beam 0 may expand at first, or they would duplicate.
    scores = jnp.where(jnp.arange(beam_size) == 0, 0.0, -jnp.inf)
    beams = {
        "scores": scores, "lengths": jnp.zeros(beam_size, jnp.int32),
        "finished": jnp.zeros(beam_size, bool),
        "tokens": jnp.zeros((beam_size, num_tokens), jnp.int32),
    }
    unmoved = jnp.arange(beam_size)

    def expand_and_feed(carry, inputs):  # one scan for prompt and beams: one copy of the model
        beams, state, logits = carry
        t, given = inputs  # given: the prompt's token t, or padding past the prompt
        in_prompt = t < prompt_length
        expanded, parent, token = expand(beams, logits, jnp.maximum(t - prompt_length, 0))
        beams = jax.tree.map(partial(jnp.where, in_prompt), beams, expanded)
        parent, token = jnp.where(in_prompt, unmoved, parent), jnp.where(in_prompt, given, token)
        logits, state = step_fn(reorder_beams(state, parent), token)
        return (beams, state, logits), None

    (beams, _, logits), _ = jax.lax.scan(
        expand_and_feed, (beams, state, _no_logits(step_fn, state, prompt)),
        _fed_tokens(prompt, num_tokens))
    beams, _, _ = expand(beams, logits, num_tokens - 1)  # the last token feeds nothing
    final = beams["scores"] / beams["lengths"].astype(jnp.float32) ** length_penalty
    best = jnp.argmax(final)
    return beams["tokens"][best], final[best]
