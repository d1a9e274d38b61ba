"""Greedy and beam search for the autoregressive decoders, in the TensorFlow graph."""

from __future__ import annotations

from typing import Callable, NamedTuple

import tensorflow as tf

from tfode.tokens import PAD_ID, lengths_before_eos

# step_fn(state [n, width], previous_tokens [n] int32, position int32 scalar)
#   -> (logits [n, vocab], new_state [n, width], nfe int32 scalar); `width` is the decoder's
#   choice (its units, or more when the state carries h(0) beside h_k).
StepFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]


class Decoded(NamedTuple):
    """A decoded batch.

    ids: `[batch, max_steps]` int32, the tokens up to and including `<eos>`, then 0.
    scores: `[batch, max_steps]` float32, the log-probability of each emitted token, then 0.
    lengths: `[batch]` int32, tokens before `<eos>` (all of them when none was emitted).
    nfe: int32 scalar, vector-field evaluations spent on the whole batch (0 for a discrete
      decoder).
    """

    ids: tf.Tensor
    scores: tf.Tensor
    lengths: tf.Tensor
    nfe: tf.Tensor


def mask_after_eos(ids: tf.Tensor, scores: tf.Tensor, eos_id: int, nfe=0) -> Decoded:
    """Zeroes ids and scores after the first `<eos>` of each row (the `<eos>` itself stays)."""
    lengths = lengths_before_eos(ids, eos_id)
    keep = tf.sequence_mask(lengths + 1, tf.shape(ids)[1])
    return Decoded(
        ids=tf.where(keep, ids, tf.zeros_like(ids)),
        scores=tf.where(keep, scores, tf.zeros_like(scores)),
        lengths=lengths,
        nfe=tf.convert_to_tensor(nfe, tf.int32),
    )


def beam_search(
    step_fn: StepFn,
    initial_state: tf.Tensor,
    max_steps: int | tf.Tensor,
    bos_id: int,
    eos_id: int,
    beam_width: int = 1,
) -> Decoded:
    """Beam search (greedy when `beam_width == 1`) from `initial_state` `[batch, width]`.

    Beams are ranked by the sum of their tokens' log-probabilities (no length penalty); a beam
    that has emitted `<eos>` keeps its score and emits padding. Returns the best beam per row.
    """
    if beam_width == 1:
        return greedy_search(step_fn, initial_state, max_steps, bos_id, eos_id)
    batch = tf.shape(initial_state)[0]
    units = initial_state.shape[-1] or tf.shape(initial_state)[1]
    max_steps = tf.convert_to_tensor(max_steps, tf.int32)
    flat = batch * beam_width

    state = tf.repeat(initial_state, beam_width, axis=0)
    tokens = tf.fill([flat], tf.constant(bos_id, tf.int32))
    # Only the first beam is alive at the start, so the k first candidates are distinct.
    beam_scores = tf.tile(
        tf.concat([[0.0], tf.fill([beam_width - 1], -1e9)], axis=0)[None], [batch, 1]
    )
    finished = tf.zeros([batch, beam_width], tf.bool)
    ids = tf.zeros([batch, beam_width, 0], tf.int32)
    scores = tf.zeros([batch, beam_width, 0], tf.float32)

    def body(position, state, tokens, beam_scores, finished, ids, scores, nfe):
        logits, new_state, step_nfe = step_fn(state, tokens, position)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        vocab = tf.shape(log_probs)[1]
        log_probs = tf.reshape(log_probs, [batch, beam_width, vocab])
        # A finished beam can only emit padding, at no cost.
        pad_only = tf.where(tf.range(vocab) == PAD_ID, 0.0, -1e9)
        log_probs = tf.where(finished[..., None], pad_only[None, None], log_probs)
        candidates = tf.reshape(beam_scores[..., None] + log_probs, [batch, beam_width * vocab])
        beam_scores, flat_index = tf.math.top_k(candidates, k=beam_width)
        parent = flat_index // vocab
        token = flat_index % vocab
        token_scores = tf.gather(tf.reshape(log_probs, [batch, -1]), flat_index, batch_dims=1)

        finished = tf.gather(finished, parent, batch_dims=1) | tf.equal(token, eos_id)
        ids = tf.concat([tf.gather(ids, parent, batch_dims=1), token[..., None]], axis=2)
        scores = tf.concat(
            [tf.gather(scores, parent, batch_dims=1), token_scores[..., None]], axis=2
        )
        parent_rows = tf.reshape(parent + tf.range(batch)[:, None] * beam_width, [flat])
        state = tf.gather(tf.reshape(new_state, [flat, units]), parent_rows)
        token = tf.reshape(token, [flat])
        return position + 1, state, token, beam_scores, finished, ids, scores, nfe + step_nfe

    def not_done(position, state, tokens, beam_scores, finished, ids, scores, nfe):
        return tf.logical_and(position < max_steps, tf.logical_not(tf.reduce_all(finished)))

    _, _, _, _, _, ids, scores, nfe = tf.while_loop(
        not_done,
        body,
        (tf.constant(0), state, tokens, beam_scores, finished, ids, scores, tf.constant(0)),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, initial_state.shape[-1]]),
            tf.TensorShape([None]),
            tf.TensorShape([None, beam_width]),
            tf.TensorShape([None, beam_width]),
            tf.TensorShape([None, beam_width, None]),
            tf.TensorShape([None, beam_width, None]),
            tf.TensorShape([]),
        ),
    )
    # top_k keeps beams sorted: beam 0 is the best. Pad to max_steps for a fixed width.
    padding = [[0, 0], [0, max_steps - tf.shape(ids)[2]]]
    best_ids = tf.pad(ids[:, 0], padding)
    best_scores = tf.pad(scores[:, 0], padding)
    return mask_after_eos(best_ids, best_scores, eos_id, nfe)


def greedy_search(
    step_fn: StepFn,
    initial_state: tf.Tensor,
    max_steps: int | tf.Tensor,
    bos_id: int,
    eos_id: int,
) -> Decoded:
    """Greedy search from `initial_state` `[batch, width]`: each row takes its most likely token
    (the lowest id on a tie, as `beam_search` of width 1 would) until every row has emitted
    `<eos>` or `max_steps` tokens; a finished row emits padding at no cost.

    The same tokens and scores as a beam of width 1, with fewer operations per step (no top-k
    over the vocabulary, no beam bookkeeping): decoding is the serving signatures' hot loop.
    """
    batch = tf.shape(initial_state)[0]
    max_steps = tf.convert_to_tensor(max_steps, tf.int32)

    def body(position, state, tokens, finished, ids, scores, nfe):
        logits, new_state, step_nfe = step_fn(state, tokens, position)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        token = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        token_score = tf.gather(log_probs, token, batch_dims=1)
        token = tf.where(finished, tf.constant(PAD_ID, tf.int32), token)
        token_score = tf.where(finished, 0.0, token_score)
        finished = finished | tf.equal(token, eos_id)
        ids = tf.concat([ids, token[:, None]], axis=1)
        scores = tf.concat([scores, token_score[:, None]], axis=1)
        return position + 1, new_state, token, finished, ids, scores, nfe + step_nfe

    def not_done(position, state, tokens, finished, ids, scores, nfe):
        return tf.logical_and(position < max_steps, tf.logical_not(tf.reduce_all(finished)))

    _, _, _, _, ids, scores, nfe = tf.while_loop(
        not_done,
        body,
        (tf.constant(0), initial_state, tf.fill([batch], tf.constant(bos_id, tf.int32)),
         tf.zeros([batch], tf.bool), tf.zeros([batch, 0], tf.int32), tf.zeros([batch, 0], tf.float32),
         tf.constant(0)),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, initial_state.shape[-1]]),
            tf.TensorShape([None]),
            tf.TensorShape([None]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None, None]),
            tf.TensorShape([]),
        ),
    )
    padding = [[0, 0], [0, max_steps - tf.shape(ids)[1]]]
    return mask_after_eos(tf.pad(ids, padding), tf.pad(scores, padding), eos_id, nfe)
