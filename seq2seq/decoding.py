"""Greedy search, beam search and sampling as graph loops over an incremental step function.

The decoders never see a model, only the translator's incremental contract:

    step_fn(token_ids [batch] int32, state) -> (logits [batch, vocab], new_state,
                                                attention [batch, src_time])

`state` is a flat dict of tensors, each with the leading batch dimension, and
`new_state` has the same keys and shapes. The model runs once per output
position on the previous token and the carried state (LSTM state, attention
context); it never re-reads the growing prefix. Beam search reorders every
state entry along axis 0 when beams are reselected, except the entries that
`step_fn` returns unchanged (the very same tensor): those are identical across
a row's beams, so reordering them would be a no-op. Per-source constants (the
encoder memory) go in `source_state` instead: one row per source, never tiled
(`encode_and_decode` puts there what the translator lists in `per_source_state`).

Only rows still searching reach `step_fn`: once a row is done its hypotheses
leave the batch (gathered out, results scattered back), so `step_fn` sees a
batch that shrinks as sentences end, and a batch of mixed lengths costs the
sum of its rows' steps, not its longest row's steps times its size.

Output conventions, the same for every strategy (`DecodeResult`):
- `token_ids` [batch, max_length] int32: the hypothesis *with* its end token,
  then `PAD_ID` (0) up to `max_length`. A hypothesis that reaches `max_length`
  without an end token fills every position.
- `lengths` [batch] int32: tokens in the hypothesis, the end token included.
- `log_probs` [batch]: sum of the model's log-probabilities of those tokens.
- `scores` [batch]: the score hypotheses are ranked by. Beam search divides
  `log_probs` by the GNMT length penalty ((5 + length) / 6) ** length_penalty
  (Wu et al., 2016); greedy decoding ranks nothing, so its scores are its
  `log_probs`.
- `attention` [batch, max_length, src_time]: the alignment computed at the step
  that produced each token; zeros after the hypothesis.
With `n_best`, an `NBestResult` holds the same fields with an [n_best] axis
after the batch axis: the best hypotheses of the one search, best first.

Strategies are hooks of one loop (`Search.candidates`): `GreedySearch`,
`BeamSearch` (GNMT length penalty, optional coverage penalty) and
`SamplingSearch` (temperature, top-k, top-p, stateless seeds). docs/decoding.md
shows each from the command line.

Lengths: `max_length` bounds the output including the end token; `min_length`
is the number of tokens that must precede it (the end token is forbidden at
steps 0 .. min_length - 1). `PAD_ID` and `START_ID` are never emitted.

Placeholders (`reserved_ids`, the ids of `seq2seq.placeholders.RESERVED_TOKENS`):
a row's `required` reserved tokens (those of its source) are each emitted
exactly once, the other reserved tokens never, and the end token only once all
of them are out; when the room left before `max_length` is just enough for the
missing ones and the end token, nothing else may be emitted. If `max_length`
leaves no room for them all (more of them than `max_length - 1`), the end
token is allowed and a row may end without some. Each hypothesis carries a
[n_reserved] bool state of the tokens it emitted; a batch in which no source
holds a reserved token runs without it (the reserved tokens only forbidden),
so that the constraint costs nothing there.
"""

from typing import NamedTuple
import weakref

import numpy as np
import tensorflow as tf

from seq2seq.tokens import END_ID, PAD_ID, START_ID

DEFAULT_MAX_LENGTH = 128
DEFAULT_LENGTH_PENALTY = 0.6

_NEG = -1e9  # log-probability of an impossible token or an empty slot
_VALID = _NEG / 2  # any real log-probability sum is above this
# A decoding step calls the model on a multiple of this many input rows, done ones filling the last
# bucket: 1,000 test sentences, beam 4, batches of 64, peak RSS 729 MB against 868 MB with 1 (one
# shape per live count), the same sentences/s; 64 (never dropping done rows) 705 MB but 15% slower
# (docs/performance.md).
ROW_BUCKET = 16
_COVERAGE_FLOOR = 1e-6  # the attention a never-attended source position counts as (log: -13.8)


class DecodeResult(NamedTuple):
    """The best hypothesis per input row (see the module docstring)."""

    token_ids: tf.Tensor  # [batch, max_length] int32
    lengths: tf.Tensor  # [batch] int32
    log_probs: tf.Tensor  # [batch] float32
    scores: tf.Tensor  # [batch] float32
    attention: tf.Tensor  # [batch, max_length, src_time] float32


class NBestResult(NamedTuple):
    """The `n_best` best hypotheses per input row, best first: `DecodeResult`'s
    fields with an [n_best] axis after the batch axis.

    Finished hypotheses come first (by score), then, when a row finished fewer
    than `n_best` by `max_length`, its best unfinished ones (cut at
    `max_length`). A slot left without any hypothesis has length 0, only
    `PAD_ID` tokens, zero attention and `log_probs = scores = -inf`.
    """

    token_ids: tf.Tensor  # [batch, n_best, max_length] int32
    lengths: tf.Tensor  # [batch, n_best] int32
    log_probs: tf.Tensor  # [batch, n_best] float32
    scores: tf.Tensor  # [batch, n_best] float32
    attention: tf.Tensor  # [batch, n_best, max_length, src_time] float32


class _Finished(NamedTuple):
    """The best `width` finished hypotheses per row, best first: [batch, width]."""

    scores: tf.Tensor  # normalised; _NEG for an empty slot
    log_probs: tf.Tensor
    end_steps: tf.Tensor  # step that emitted the end token
    candidates: tf.Tensor  # candidate index at that step (for backtracking)


class _History(NamedTuple):
    """Per-step records (TensorArrays over steps) to backtrack hypotheses."""

    tokens: tf.TensorArray  # [batch, candidates]: token of each candidate
    parents: tf.TensorArray  # [batch, candidates]: alive slot it extends
    alive_from: tf.TensorArray  # [batch, width]: candidate each alive slot took
    attention: tf.TensorArray  # [batch, width, src_time]: per alive slot


class _Rows(NamedTuple):
    """What the search holds per input row (`model_state`: per hypothesis, [batch * width, ...])."""

    inputs: tf.Tensor  # [batch, width] tokens fed at this step
    alive_log_probs: tf.Tensor  # [batch, width]; _NEG for a dead slot
    finished: _Finished
    done: tf.Tensor  # [batch] bool
    model_state: dict
    emitted: tuple | tf.Tensor = ()  # [batch, width, n_reserved] bool when placeholders are required
    coverage: tuple | tf.Tensor = ()  # [batch, width, src_time] attention received, with a coverage penalty


class _Records(NamedTuple):
    """One step's entries of the `_History`, [batch, ...]."""

    tokens: tf.Tensor  # [batch, candidates]
    parents: tf.Tensor  # [batch, candidates]
    alive_from: tf.Tensor  # [batch, width]
    attention: tf.Tensor  # [batch, width, src_time]


class _Loop(NamedTuple):
    step: tf.Tensor  # scalar int32
    rows: _Rows
    history: _History


class Search:
    """The decoding loop: done flags, end token, max and min length.

    Each input row keeps `width` alive hypotheses and the best `width` finished
    ones. A strategy overrides one hook, `candidates`, which proposes the
    extensions of the alive hypotheses; the loop does the rest. Of the proposed
    candidates, those that end in the end token *and* rank among the first
    `width` become finished; the best `width` others stay alive. A row is done
    when it holds `width` finished hypotheses and none of its alive ones
    scores higher at the current length (fairseq's count with the check of
    Hugging Face's default: a width-1 beam stays exactly greedy, and a beam
    whose weak slots end early keeps following its likely hypothesis), when
    no alive hypothesis can beat its best finished one any more (`_settled`),
    or has nothing left alive; the loop stops when every row is done or at
    `max_length`. A row with no finished hypothesis then returns its best
    alive one, cut at `max_length`.
    """

    def __init__(self, width: int, length_penalty: float = 0.0, coverage_penalty: float = 0.0):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"`beam_size` must be an integer >= 1. Received: beam_size={width!r}")
        for name, value in (("length_penalty", length_penalty), ("coverage_penalty", coverage_penalty)):
            if not tf.is_tensor(value) and value < 0:
                raise ValueError(f"`{name}` must be >= 0. Received: {name}={value!r}")
        self.width = width
        # Scalar tensors too (an exported model's call-time inputs), unchecked.
        self.length_penalty = length_penalty if tf.is_tensor(length_penalty) else float(length_penalty)
        self.coverage_penalty = coverage_penalty if tf.is_tensor(coverage_penalty) else float(coverage_penalty)

    def candidates(self, logits, shift, bias, tail=None, *, step=None):
        """Hook: the extensions of the alive hypotheses worth keeping.

        A candidate (slot s, token v) has the log-prob sum
        `shift[b, s] + logits[b, s, v] + bias(b, s, v)` (`top_candidates` ranks
        them without materialising that [batch, width, vocab] sum).

        Args:
            logits: [batch, width, vocab] this step's logits.
            shift: [batch, width] each alive slot's log-prob sum minus its logsumexp.
            bias: [span] or [batch, width, span], the bias of ids < span: 0, or
                _NEG on tokens that may not be emitted now.
            tail: None, or [batch, width] the bias of ids >= span.
            step: scalar int32, the output position being chosen.
        Returns:
            `(log_probs, parents, tokens)`, each [batch, n] with n >= width,
            sorted best first: a candidate extends alive slot `parents` with `tokens`.
        """
        raise NotImplementedError

    def __call__(self, step_fn, initial_state, batch_size, *, max_length, min_length=0, source_state=None,
                 reserved_ids=(), required=None, n_best=None, source_mask=None):
        """Decodes `batch_size` rows; returns a `DecodeResult`, or an `NBestResult` with `n_best`.

        Args:
            step_fn: see the module docstring.
            initial_state: {name: [batch, ...]}, per hypothesis: tiled to
                `width` adjacent rows per input row, reordered with the beams.
            source_state: {name: [batch, ...]}, per input row and constant
                (an encoder's memory): never tiled; `step_fn` receives it
                merged into the state, one row per input row, and need not
                return it.
            reserved_ids: the placeholder token ids (see the module docstring);
                never emitted unless `required`.
            required: None, or [batch, len(reserved_ids)] bool: the reserved
                tokens each row must emit exactly once before its end token.
            n_best: None (the best hypothesis, a `DecodeResult`), or how many
                of the best hypotheses to return per row, 1 .. width (an
                `NBestResult`). A row then stops early only once its
                `n_best`-th finished hypothesis can no longer be beaten.
            source_mask: [batch, src_time] bool, True at real source
                positions: the positions the coverage penalty sums over
                (required with a `coverage_penalty`, unused without).
        `max_length` and `n_best` may be scalar int32 tensors (inputs of an
        exported model): they are then not checked, and shapes that depend on
        them are not static.
        """
        _check_lengths(max_length, min_length)
        self._check_n_best(n_best)
        source_state = dict(source_state or {})
        rules = _TokenRules(min_length, max_length, reserved_ids, required)
        coverage = self._coverage(source_mask)
        loop = self._initial_loop(initial_state, batch_size, max_length, rules, coverage)
        rank = 0 if n_best is None else n_best - 1  # the finished hypothesis that must be safe before a row stops
        loop = tf.while_loop(
            lambda loop: (loop.step < max_length) & ~tf.reduce_all(loop.rows.done),
            lambda loop: (self._advance(step_fn, loop, source_state, rules, rank, coverage),),
            (loop,),
        )[0]
        if n_best is None:
            best = self._n_best(loop, max_length, 1, coverage)
            return DecodeResult(*(tf.squeeze(field, axis=1) for field in best))
        return _emptied(self._n_best(loop, max_length, n_best, coverage))

    def _coverage(self, source_mask):
        if not tf.is_tensor(self.coverage_penalty) and self.coverage_penalty == 0:
            return _Coverage(0.0, None)
        if source_mask is None:
            raise ValueError("A coverage penalty sums over the real source positions: pass `source_mask` "
                             f"[batch, src_time] with coverage_penalty={self.coverage_penalty!r}")
        return _Coverage(self.coverage_penalty, tf.cast(source_mask, tf.bool))

    def _check_n_best(self, n_best):
        if n_best is None or tf.is_tensor(n_best):
            return
        if not isinstance(n_best, int) or not 1 <= n_best <= self.width:
            raise ValueError(
                f"`n_best` must be an integer from 1 to the beam size ({self.width}); raise the beam size "
                f"to get more hypotheses. Received: n_best={n_best!r}"
            )

    def _initial_loop(self, initial_state, batch_size, max_length, rules, coverage):
        width = self.width
        first_slot_only = tf.constant([[0.0] + [_NEG] * (width - 1)])

        def records():
            return tf.TensorArray(tf.int32, size=max_length, clear_after_read=False)

        return _Loop(
            step=tf.constant(0),
            rows=_Rows(
                inputs=tf.fill([batch_size, width], START_ID),
                alive_log_probs=tf.tile(first_slot_only, [batch_size, 1]),
                finished=_Finished(
                    scores=tf.fill([batch_size, width], _NEG),
                    log_probs=tf.zeros([batch_size, width]),
                    end_steps=tf.zeros([batch_size, width], tf.int32),
                    candidates=tf.zeros([batch_size, width], tf.int32),
                ),
                done=tf.zeros([batch_size], tf.bool),
                model_state={k: _tile(v, width) for k, v in initial_state.items()},
                emitted=rules.initial_emitted(batch_size, width),
                coverage=coverage.initial(width),
            ),
            history=_History(
                tokens=records(),
                parents=records(),
                alive_from=records(),
                attention=tf.TensorArray(tf.float32, size=max_length, clear_after_read=False),
            ),
        )

    def _advance(self, step_fn, loop, source_state, rules, rank, coverage):
        """One decoding step for the rows still searching; done rows are left out of the model call.

        Rows finish at different steps (sentences of different lengths in one
        batch); the model runs on the live ones (gathered, then scattered
        back), padded with done ones to a multiple of `ROW_BUCKET` rows, so a
        batch costs about the sum of its rows' steps rather than its longest
        row's steps times its size.
        """
        batch = tf.shape(loop.rows.done)[0]
        count = tf.reduce_sum(tf.cast(~loop.rows.done, tf.int32))
        # Done rows pad the call to a multiple of ROW_BUCKET rows (their results are dropped): the
        # model then meets a few batch shapes, not one per live count, and oneDNN keeps kernels per shape.
        called = tf.argsort(tf.cast(loop.rows.done, tf.int32), stable=True)[
            :tf.minimum(batch, -(-count // ROW_BUCKET) * ROW_BUCKET)]  # [called]: live rows first, in order
        live = called[:count]  # [live]
        rows = _gather_rows(loop.rows, called, self._slots(called))
        sources = {k: tf.gather(v, called) for k, v in source_state.items()}
        rows, records = self._extend(step_fn, rows, sources, loop.step, rules.of_rows(called), rank,
                                     coverage.of_rows(called))
        rows, records = _first_rows(rows, count, self.width), tf.nest.map_structure(lambda r: r[:count], records)
        slots = self._slots(live)
        return _Loop(
            step=loop.step + 1,
            rows=_scatter_rows(loop.rows, rows, live, slots),
            history=_History(*(
                history.write(loop.step, _scatter_into_zeros(record, live, batch))
                for history, record in zip(loop.history, records)
            )),
        )

    def _slots(self, rows):
        """[rows] input rows -> [rows * width] their hypotheses' slots."""
        return tf.reshape(rows[:, None] * self.width + tf.range(self.width), [-1])

    def _extend(self, step_fn, rows, sources, step, rules, rank, coverage):
        """Runs the model once on `rows` (all live) and extends, finishes and reselects their hypotheses.

        `rank`: the row is settled once its finished hypothesis of this rank
        (0 = the best) can no longer be beaten. Returns the next `_Rows` and
        this step's `_Records`.
        """
        batch, width = tf.shape(rows.inputs)[0], self.width
        state = {**rows.model_state, **sources}
        logits, new_state, attention = step_fn(tf.reshape(rows.inputs, [-1]), state)
        # The vocabulary size stays static (a reshape to -1 after a dynamic batch would lose it).
        logits = tf.reshape(tf.cast(logits, tf.float32), [batch, width, logits.shape[-1] or -1])
        # A candidate's log-prob sum is alive + logit - logsumexp(logits): a shift per slot.
        shift = rows.alive_log_probs - tf.reduce_logsumexp(logits, axis=-1)
        cand_log_probs, parents, tokens = self.candidates(logits, shift, *rules.bias(step, rows.emitted), step=step)
        attention = tf.reshape(tf.cast(attention, tf.float32), [batch, width, -1])
        cand_coverage = coverage.extend(rows.coverage, attention, parents)  # [batch, n, src_time], or ()
        finished = self._finish(rows.finished, step, cand_log_probs, tokens, coverage.term(cand_coverage))
        alive_key = tf.where(tokens == END_ID, _NEG, cand_log_probs)
        alive_log_probs, alive_from = tf.math.top_k(alive_key, k=width)
        alive_parents = tf.gather(parents, alive_from, batch_dims=1)
        flat_parents = tf.reshape(alive_parents + width * tf.range(batch)[:, None], [-1])
        model_state = {}
        for key in rows.model_state:  # the per-source entries are not carried
            value = new_state[key]
            model_state[key] = value if width == 1 or value is state[key] else tf.gather(value, flat_parents)
        found = tf.reduce_sum(tf.cast(finished.scores > _VALID, tf.int32), axis=1)
        nothing_alive = tf.reduce_all(alive_log_probs <= _VALID, axis=1)
        settled = self._settled(finished.scores[:, rank], alive_log_probs, rules.max_length)
        # `width` finished ones end a row only once none alive outscores them at today's length.
        full = (found >= width) & (finished.scores[:, rank] >= self._best_alive_score(alive_log_probs, step + 1))
        inputs = tf.gather(tokens, alive_from, batch_dims=1)
        next_rows = _Rows(
            inputs=inputs,
            alive_log_probs=tf.maximum(alive_log_probs, _NEG),
            finished=finished,
            done=full | nothing_alive | settled,
            model_state=model_state,
            emitted=rules.emitted_after(rows.emitted, alive_parents, inputs),
            coverage=coverage.select(cand_coverage, alive_from),
        )
        return next_rows, _Records(tokens, parents, alive_from, attention)

    def _finish(self, finished, step, cand_log_probs, tokens, coverage_term=0.0):
        """Merges this step's end-token candidates (of rows still searching) into the finished set.

        `coverage_term`: 0, or [batch, n] each candidate's coverage penalty (<= 0), added to its score.
        """
        shape = tf.shape(tokens)
        rank = tf.broadcast_to(tf.range(shape[1])[None, :], shape)
        finishing = (tokens == END_ID) & (cand_log_probs > _VALID) & (rank < self.width)
        scores = cand_log_probs / self._penalty(step + 1) + coverage_term
        new = _Finished(
            scores=tf.where(finishing, scores, _NEG),
            log_probs=cand_log_probs,
            end_steps=tf.fill(shape, step),
            candidates=rank,
        )
        merged = tf.nest.map_structure(lambda a, b: tf.concat([a, b], axis=1), finished, new)
        _, keep = tf.math.top_k(merged.scores, k=self.width)
        return tf.nest.map_structure(lambda x: tf.gather(x, keep, batch_dims=1), merged)

    def _settled(self, best_finished, alive_log_probs, max_length):
        """[batch] bool: no alive hypothesis can still beat the row's best finished one.

        Log-probabilities only fall as a hypothesis grows and the length
        penalty only grows with length, so an alive hypothesis can at best
        finish with its current sum over the penalty of `max_length`. Once the
        best finished score reaches that bound for every alive slot, the row's
        result is decided: stopping it changes no output, only the steps run.
        """
        bound = tf.reduce_max(alive_log_probs, axis=1) / self._penalty(max_length)
        return (best_finished > _VALID) & (best_finished >= bound)

    def _best_alive_score(self, alive_log_probs, length):
        """[batch] the best alive hypothesis' score were it to end at `length` tokens."""
        return tf.reduce_max(alive_log_probs, axis=1) / self._penalty(length)

    def _penalty(self, length):
        return ((5.0 + tf.cast(length, tf.float32)) / 6.0) ** self.length_penalty

    def _n_best(self, loop, max_length, n, coverage) -> NBestResult:
        """The `n` best hypotheses per row: its finished ones, then its best alive ones.

        Finished and alive slots are each sorted best first (an alive slot's
        score is its log-prob sum over the penalty of the same length, so the
        order of the sums), so slot k is finished slot k while k < found, else
        alive slot k - found. Slots that hold nothing have log_probs <= _VALID.
        """
        last = loop.step - 1
        finished, alive = loop.rows.finished, loop.rows.alive_log_probs
        found = tf.reduce_sum(tf.cast(finished.scores > _VALID, tf.int32), axis=1)[:, None]  # [batch, 1]
        k = tf.range(n)[None, :]
        from_finished = k < found  # [batch, n]
        alive_slot = tf.clip_by_value(k - found, 0, self.width - 1)

        def pick(finished_values, alive_values):
            return tf.where(from_finished, tf.gather(finished_values, tf.broadcast_to(k, tf.shape(alive_slot)),
                                                     batch_dims=1),
                            tf.gather(alive_values, alive_slot, batch_dims=1))

        end_steps = pick(finished.end_steps, tf.fill(tf.shape(alive), last))
        candidates = pick(finished.candidates, loop.history.alive_from.read(last))
        log_probs = pick(finished.log_probs, alive)
        lengths = end_steps + 1
        alive_scores = log_probs / self._penalty(lengths)
        if coverage.on:
            alive_scores += tf.gather(coverage.term(loop.rows.coverage), alive_slot, batch_dims=1)
        scores = tf.where(from_finished, pick(finished.scores, alive), alive_scores)
        token_ids, attention = _backtrack(loop.history, loop.step, end_steps, candidates)
        missing = max_length - loop.step
        token_ids = tf.pad(token_ids, [[0, 0], [0, 0], [0, missing]])
        n, max_length = _static(n), _static(max_length)
        return NBestResult(
            token_ids=tf.ensure_shape(token_ids, [None, n, max_length]),
            lengths=lengths,
            log_probs=log_probs,
            scores=scores,
            attention=tf.ensure_shape(
                tf.pad(attention, [[0, 0], [0, 0], [0, missing], [0, 0]]), [None, n, max_length, None]
            ),
        )


def _static(value):
    """`value` when it is a Python int, None (an unknown dimension) when it is a tensor."""
    return None if tf.is_tensor(value) else value


def _emptied(result: NBestResult) -> NBestResult:
    """`result` with each slot that holds no hypothesis (log_probs <= _VALID) made empty (see `NBestResult`)."""
    empty = result.log_probs <= _VALID
    return NBestResult(
        token_ids=tf.where(empty[:, :, None], PAD_ID, result.token_ids),
        lengths=tf.where(empty, 0, result.lengths),
        log_probs=tf.where(empty, -np.inf, result.log_probs),
        scores=tf.where(empty, -np.inf, result.scores),
        attention=tf.where(empty[:, :, None, None], 0.0, result.attention),
    )


class GreedySearch(Search):
    """Greedy decoding: the most likely token at every step."""

    def __init__(self):
        super().__init__(width=1)

    def candidates(self, logits, shift, bias, tail=None, *, step=None):
        return top_candidates(logits, shift, bias, 1, tail)


class BeamSearch(Search):
    """Beam search with a GNMT length penalty over finished hypotheses.

    Alive beams are ranked by their log-probability sum; finished hypotheses
    by that sum over ((5 + length) / 6) ** length_penalty, so 0 means no
    normalisation and larger values favour longer outputs, plus the coverage
    penalty when `coverage_penalty` > 0 (`_Coverage`: hypotheses that leave
    source words unattended rank lower; it needs `source_mask`).
    """

    def __init__(self, beam_size: int, length_penalty: float = DEFAULT_LENGTH_PENALTY,
                 coverage_penalty: float = 0.0):
        super().__init__(width=beam_size, length_penalty=length_penalty, coverage_penalty=coverage_penalty)

    def candidates(self, logits, shift, bias, tail=None, *, step=None):
        # 2 * width: at most `width` of them end, so `width` stay alive.
        return top_candidates(logits, shift, bias, 2 * self.width, tail)


class Sampling(NamedTuple):
    """Options of random sampling (`SamplingSearch`); hashable, so a `translate_ids` cache key."""

    temperature: float = 1.0  # > 0: divides the logits; < 1 sharpens, > 1 flattens
    top_k: int = 0  # draw among the k likeliest tokens only; 0 = all
    top_p: float = 1.0  # draw among the fewest likeliest tokens whose probability reaches p; 1 = all
    seed: int = 0  # the same seed, inputs and batches give the same samples


class SamplingSearch(Search):
    """Random sampling: each step draws the next token from the model's distribution.

    The distribution is softmax(logits / temperature), cut to the `top_k`
    likeliest tokens and then to the smallest set of likeliest tokens whose
    probability reaches `top_p` (nucleus sampling, Holtzman et al., 2020);
    the forbidden tokens (special, placeholder, min_length) are never drawn.
    The hypothesis' `log_probs` stay the model's own (temperature 1, no cut),
    so that they compare with greedy, beam search and `seq2seq.scoring`.
    Draws are stateless: `seed` [2] int (a tensor may differ per call) and the
    step give each step's random numbers, so the same seed, batch and model
    give the same samples; `top_k=1` is greedy decoding. A `temperature`
    given as a scalar tensor (an exported model's call-time input) may be 0:
    the search is then greedy, chosen in the graph per step.
    """

    def __init__(self, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed=(0, 0)):
        super().__init__(width=1)
        if tf.is_tensor(temperature):  # an exported model's call-time input, unchecked
            _check_sampling(1.0, top_k, top_p)
        else:
            _check_sampling(temperature, top_k, top_p)
            temperature = float(temperature)
        self.temperature, self.top_k, self.top_p = temperature, int(top_k), float(top_p)
        self.seed = seed

    def candidates(self, logits, shift, bias, tail=None, *, step=None):
        if not tf.is_tensor(self.temperature):
            return self._draw(logits, shift, bias, tail, step)
        return tf.cond(self.temperature > 0, lambda: self._draw(logits, shift, bias, tail, step),
                       lambda: top_candidates(logits, shift, bias, 1, tail))

    def _draw(self, logits, shift, bias, tail, step):
        vocab = logits.shape[-1] or tf.shape(logits)[-1]
        forbidden = (tf.broadcast_to(_first_chunk_bias(bias, tail, vocab), tf.shape(logits)) <= _VALID)[:, 0]
        scaled = tf.where(forbidden, -np.inf, logits[:, 0] / self.temperature)  # [batch, vocab]
        if self.top_k:
            kth = tf.math.top_k(scaled, k=tf.minimum(self.top_k, tf.shape(scaled)[-1])).values[:, -1:]
            scaled = tf.where(scaled < kth, -np.inf, scaled)
        if self.top_p < 1.0:
            ranked = tf.sort(scaled, axis=-1, direction="DESCENDING")
            before = tf.math.cumsum(tf.nn.softmax(ranked), axis=-1, exclusive=True)  # probability above each
            lowest = tf.reduce_min(tf.where(before < self.top_p, ranked, np.inf), axis=-1, keepdims=True)
            scaled = tf.where(scaled < lowest, -np.inf, scaled)
        seed = tf.random.experimental.stateless_fold_in(tf.cast(self.seed, tf.int32), step)
        tokens = tf.random.stateless_categorical(scaled, 1, seed=seed, dtype=tf.int32)  # [batch, 1]
        picked = tf.gather(logits[:, 0], tokens, batch_dims=1)
        return picked + shift, tf.zeros_like(tokens), tokens


def greedy_decode(step_fn, initial_state, batch_size, *, max_length, min_length=0, **options):
    """Greedy decoding; returns a `DecodeResult` (see the module docstring).

    `options`: `reserved_ids`, `required` and `n_best` as in `Search.__call__`.
    """
    return GreedySearch()(
        step_fn, initial_state, batch_size, max_length=max_length, min_length=min_length, **options
    )


def beam_search_decode(
    step_fn,
    initial_state,
    batch_size,
    *,
    beam_size,
    max_length,
    min_length=0,
    length_penalty=DEFAULT_LENGTH_PENALTY,
    coverage_penalty=0.0,
    **options,
):
    """Beam search; returns the best hypothesis per row as a `DecodeResult`
    (with `n_best`, the best `n_best` as an `NBestResult`).

    `options`: `reserved_ids`, `required`, `n_best` and `source_mask` as in `Search.__call__`.
    """
    return BeamSearch(beam_size, length_penalty, coverage_penalty)(
        step_fn, initial_state, batch_size, max_length=max_length, min_length=min_length, **options
    )


def encode_and_decode(
    translator,
    source_ids,
    *,
    beam_size=1,
    max_length=DEFAULT_MAX_LENGTH,
    min_length=0,
    length_penalty=DEFAULT_LENGTH_PENALTY,
    reserved_ids=(),
    constrain=None,
    n_best=None,
    sampling=None,
    seed=None,
    coverage_penalty=0.0,
):
    """`translator.encode` then greedy (beam_size=1), beam search or sampling.

    Graph-safe and not wrapped: call it inside your own `tf.function` (export
    does); `translate_ids` is the cached entry point. `beam_size=1` runs
    greedy decoding, which ignores `length_penalty`. With `reserved_ids`,
    each row must emit the reserved tokens its source holds (see the module
    docstring). `constrain` says how: True = the per-row constraint; False =
    the reserved tokens only forbidden, right for (and only for) a batch whose
    sources hold none; None = decided in the graph per batch (a `tf.cond`
    that traces both). Every choice that is right gives the same outputs.
    `n_best`: None for a `DecodeResult`, else an `NBestResult` of that many
    hypotheses per source (at most `beam_size`). `sampling`: a `Sampling`
    to draw each token instead (with `beam_size=1`), its random numbers from
    `seed` ([2] int32, may be a tensor), else from `(sampling.seed, 0)`.
    `coverage_penalty`: GNMT's coverage penalty weight of beam search (0 = none).
    """
    search = _make_search(beam_size, length_penalty, sampling, seed, coverage_penalty)
    state = translator.encode(source_ids)
    # The encoder memory is the same for every hypothesis of a source: a beam
    # search neither tiles nor reorders it, and the translator attends to it
    # with a source's `width` hypotheses at once.
    per_source = getattr(translator, "per_source_state", ())

    def decode(required=None):
        return search(
            translator.decode_step,
            {k: v for k, v in state.items() if k not in per_source},
            tf.shape(source_ids)[0],
            max_length=max_length,
            min_length=min_length,
            source_state={k: state[k] for k in per_source},
            reserved_ids=reserved_ids,
            required=required,
            n_best=n_best,
            source_mask=tf.not_equal(source_ids, PAD_ID),
        )

    if not reserved_ids or constrain is False:
        return decode()
    reserved = tf.constant(reserved_ids, tf.int32)
    required = tf.reduce_any(tf.cast(source_ids, tf.int32)[:, :, None] == reserved, axis=1)  # [batch, n]
    if constrain:
        return decode(required)
    return tf.cond(tf.reduce_any(required), lambda: decode(required), decode)


_TRANSLATE_FUNCTIONS = weakref.WeakKeyDictionary()  # translator -> {options: tf.function}


def translate_ids(
    translator,
    source_ids,
    *,
    beam_size=1,
    max_length=DEFAULT_MAX_LENGTH,
    min_length=0,
    length_penalty=DEFAULT_LENGTH_PENALTY,
    reserved_ids=(),
    constrain=None,
    n_best=None,
    sampling=None,
    sample_stream=0,
    coverage_penalty=0.0,
):
    """Translates a padded batch of source ids [batch, src_time] in one graph.

    One `tf.function` per translator and decoding options, with a
    [None, None] int32 input signature, so new batch sizes and source lengths
    do not retrace. `reserved_ids`, `constrain`: as in `encode_and_decode`;
    `constrain=None` decides from `source_ids` here, without a `tf.cond`.
    `n_best`, `sampling`: as in `encode_and_decode`. A sampling call draws
    with the seed `(sampling.seed, sample_stream)`, an input of the graph:
    give each batch of one run its own stream (`decode_batches` does) so that
    rows of different batches draw different random numbers, without a retrace.
    """
    reserved_ids = tuple(int(i) for i in reserved_ids)
    if reserved_ids and constrain is None:
        constrain = bool(np.isin(np.asarray(source_ids), reserved_ids).any())
    options = dict(
        beam_size=beam_size,
        max_length=max_length,
        min_length=min_length,
        length_penalty=float(length_penalty),
        reserved_ids=reserved_ids,
        constrain=bool(constrain) if reserved_ids else None,
        n_best=n_best,
        sampling=None if sampling is None else Sampling(*sampling)._replace(seed=0),  # the seed is an input
        coverage_penalty=float(coverage_penalty),
    )
    functions = _TRANSLATE_FUNCTIONS.setdefault(translator, {})
    key = tuple(options.values())
    if key not in functions:
        # Bad options fail here, not in tracing.
        _make_search(beam_size, length_penalty, sampling, coverage_penalty=coverage_penalty)._check_n_best(n_best)
        _check_lengths(max_length, min_length)
        functions[key] = _translate_function(weakref.ref(translator), options)
    if sampling is None:
        return functions[key](tf.cast(source_ids, tf.int32))
    return functions[key](tf.cast(source_ids, tf.int32), tf.constant([sampling.seed, sample_stream], tf.int32))


def _translate_function(translator_ref, options):
    ids = tf.TensorSpec([None, None], tf.int32)
    if options["sampling"] is None:
        @tf.function(input_signature=[ids])
        def translate(source_ids):
            return encode_and_decode(translator_ref(), source_ids, **options)
    else:
        @tf.function(input_signature=[ids, tf.TensorSpec([2], tf.int32)])
        def translate(source_ids, seed):
            return encode_and_decode(translator_ref(), source_ids, seed=seed, **options)

    return translate


def _make_search(beam_size, length_penalty, sampling=None, seed=None, coverage_penalty=0.0):
    """The search of these options; `sampling` (a `Sampling`) draws instead of searching (beam_size 1 only)."""
    if sampling is not None:
        if beam_size != 1:
            raise ValueError(f"Sampling draws one hypothesis per source: `beam_size` must be 1 with `sampling`. "
                             f"Received: beam_size={beam_size!r}")
        return SamplingSearch(sampling.temperature, sampling.top_k, sampling.top_p,
                              (sampling.seed, 0) if seed is None else seed)
    if beam_size == 1:
        return GreedySearch()
    return BeamSearch(beam_size, length_penalty, coverage_penalty)


def _check_sampling(temperature, top_k, top_p):
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature!r}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"`top_k` must be an integer >= 0 (0 = no cut). Received: top_k={top_k!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"`top_p` must be in (0, 1] (1 = no cut). Received: top_p={top_p!r}")


def _check_lengths(max_length, min_length):
    if tf.is_tensor(max_length):  # an exported model's call-time input, unchecked
        return
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(
            f"`max_length` must be an integer >= 1. Received: max_length={max_length!r}"
        )
    if not isinstance(min_length, int) or not 0 <= min_length < max_length:
        raise ValueError(
            "`min_length` must be an integer with 0 <= min_length < max_length. "
            f"Received: min_length={min_length!r}, max_length={max_length!r}"
        )


def _gather_rows(rows: _Rows, live, slots) -> _Rows:
    """The `live` input rows of `rows`; `model_state` by hypothesis (`slots`)."""
    per_row = tf.nest.map_structure(lambda x: tf.gather(x, live), rows._replace(model_state={}))
    return per_row._replace(model_state={k: tf.gather(v, slots) for k, v in rows.model_state.items()})


def _first_rows(rows: _Rows, count, width) -> _Rows:
    """The first `count` input rows of `rows` (`model_state`: their `count * width` hypotheses)."""
    per_row = tf.nest.map_structure(lambda x: x[:count], rows._replace(model_state={}))
    return per_row._replace(model_state={k: v[:count * width] for k, v in rows.model_state.items()})


def _scatter_rows(rows: _Rows, updates: _Rows, live, slots) -> _Rows:
    """`rows` with the `live` input rows replaced by `updates`; `model_state` by hypothesis (`slots`)."""
    def put(index):
        return lambda full, update: tf.tensor_scatter_nd_update(full, index[:, None], update)

    per_row = tf.nest.map_structure(put(live), rows._replace(model_state={}), updates._replace(model_state={}))
    return per_row._replace(model_state=tf.nest.map_structure(put(slots), rows.model_state, updates.model_state))


def _scatter_into_zeros(record, live, batch):
    """[live, ...] -> [batch, ...]: `record` at rows `live`, zeros elsewhere."""
    return tf.scatter_nd(live[:, None], record, tf.concat([[batch], tf.shape(record)[1:]], axis=0))


def _tile(tensor, width):
    """[batch, ...] -> [batch * width, ...], each row repeated `width` times."""
    return tensor if width == 1 else tf.repeat(tensor, width, axis=0)


def top_candidates(logits, shift, bias, n, tail=None):
    """The `n` best `shift[b, s] + logits[b, s, v] + bias(b, s, v)` of each row, exactly, in two small top-ks.

    One `top_k` over a row's width x vocab sums costs ~25x an argmax on a CPU
    (and the sums themselves a full pass). Here each slot's vocabulary is cut
    into chunks of `_chunk_size(vocab, span)` tokens; the `n` best entries lie in the
    `n` chunks with the highest maxima (a chunk holding one of them has a
    maximum at least that high; if `n` chunks had higher maxima, `n` better
    entries would exist), so one top-k picks those chunks from their maxima and
    a second the `n` best of the chunks' entries. The chosen chunks are read in
    vocabulary order, so ties go to the lower (slot, token) index as in a
    single `top_k`. The bias of ids below `span` (special and placeholder
    tokens) lies in the first chunk, whose maximum is taken with it; every
    other chunk has the slot's `tail` bias.

    Args:
        logits: [batch, width, vocab] float32 (vocab static, else one chunk).
        shift: [batch, width].
        bias: [span] or [batch, width, span], the bias of ids < span (span static, <= vocab).
        n: candidates per row, at most width * vocab.
        tail: None (0), or [batch, width] the bias of ids >= span (with a [batch, width, span] bias).
    Returns:
        `(values, slots, tokens)`, each [batch, n], best first.
    """
    vocab, span = logits.shape[-1], bias.shape[-1]
    if vocab is None:  # unknown until run time: one chunk, a plain top_k
        size, chunks = tf.shape(logits)[-1], 1
    else:
        size = _chunk_size(vocab, span)
        chunks = vocab // size
    batch, width = tf.shape(logits)[0], tf.shape(logits)[1]
    head = _first_chunk_bias(bias, tail, size)  # [size] or [batch, width, size]
    maxima = tf.reduce_max(tf.reshape(logits, [batch, width, chunks, size]), axis=-1)
    first = tf.reduce_max(logits[:, :, :size] + head, axis=-1)
    rest = maxima[:, :, 1:] if tail is None else maxima[:, :, 1:] + tail[:, :, None]
    maxima = tf.concat([first[:, :, None], rest], axis=-1) + shift[:, :, None]
    picked = tf.reshape(maxima, [batch, -1])  # [batch, width * chunks], index = slot * chunks + chunk
    _, picked = tf.math.top_k(picked, k=tf.minimum(n, tf.shape(picked)[1]))
    picked = tf.sort(picked, axis=-1)  # vocabulary order: ties as a single top_k breaks them
    slots = picked // chunks
    in_first = (picked % chunks == 0)[:, :, None]  # [batch, picked, 1]
    tokens = (picked % chunks)[:, :, None] * size + tf.range(size)  # [batch, picked, size]
    values = tf.gather(tf.reshape(logits, [batch, -1, size]), picked, batch_dims=1)
    if tail is None:
        chunk_bias = tf.where(in_first, head, 0.0)
    else:
        chunk_bias = tf.where(in_first, tf.gather(head, slots, batch_dims=1),
                              tf.gather(tail, slots, batch_dims=1)[:, :, None])
    values += tf.gather(shift, slots, batch_dims=1)[:, :, None] + chunk_bias
    values, index = tf.math.top_k(tf.reshape(values, [batch, -1]), k=n)
    return (values, tf.gather(slots, index // size, batch_dims=1),
            tf.gather(tf.reshape(tokens, [batch, -1]), index, batch_dims=1))


def _first_chunk_bias(bias, tail, size):
    """The bias of ids < `size`: `bias` [..., span] continued with `tail` (or 0) up to `size`."""
    span = bias.shape[-1]
    if isinstance(size, int) and size == span:
        return bias
    if tail is None:
        return tf.pad(bias, [[0, 0]] * (bias.shape.rank - 1) + [[0, size - span]])
    return tf.concat([bias, tf.repeat(tail[:, :, None], size - span, axis=-1)], axis=-1)


def _chunk_size(vocab: int, span: int = END_ID + 1) -> int:
    """The smallest divisor of `vocab` that is at least its square root and at least `span`."""
    floor = max(span, int(vocab ** 0.5))
    return next(size for size in range(floor, vocab + 1) if vocab % size == 0) if vocab > floor else vocab


class _Coverage:
    """GNMT's coverage penalty (Wu et al., 2016): `beta * sum_i log(min(sum_t a_ti, 1))`.

    Each hypothesis carries the attention its source positions received so
    far, [batch, width, src_time], reordered with the beams; the sum runs over
    the real source positions (`source_mask`). A position never attended to
    counts as log(_COVERAGE_FLOOR) rather than -inf, so that hypotheses stay
    comparable. Off (`source_mask` None): no state, a term of 0.
    """

    def __init__(self, beta, source_mask):
        self.beta, self.source_mask = beta, source_mask  # source_mask: [batch, src_time] bool, or None

    @property
    def on(self) -> bool:
        return self.source_mask is not None

    def of_rows(self, rows):
        return self if not self.on else _Coverage(self.beta, tf.gather(self.source_mask, rows))

    def initial(self, width):
        if not self.on:
            return ()
        return tf.zeros(tf.concat([tf.shape(self.source_mask)[:1], [width], tf.shape(self.source_mask)[1:]], 0))

    def extend(self, coverage, attention, parents):
        """[batch, n, src_time]: each candidate's coverage (its parent's, plus the parent's attention this step)."""
        return () if not self.on else tf.gather(coverage + attention, parents, batch_dims=1)

    def select(self, candidates, chosen):
        """The coverage of the `chosen` [batch, width] candidates."""
        return () if not self.on else tf.gather(candidates, chosen, batch_dims=1)

    def term(self, coverage):
        """[batch, n] the penalty of [batch, n, src_time] coverages (<= 0), or 0 when off."""
        if not self.on:
            return 0.0
        logs = tf.math.log(tf.clip_by_value(coverage, _COVERAGE_FLOOR, 1.0))
        return self.beta * tf.reduce_sum(tf.where(self.source_mask[:, None, :], logs, 0.0), axis=-1)


class _TokenRules:
    """Which token each hypothesis may emit next: special tokens, `min_length` and placeholders.

    `bias` gives the candidates' bias (`top_candidates`), `emitted_after`
    follows the reserved tokens each hypothesis emitted (see the module
    docstring for the placeholder rules).
    """

    def __init__(self, min_length, max_length, reserved_ids=(), required=None):
        self.min_length, self.max_length = min_length, max_length
        self.reserved_ids = tuple(int(i) for i in reserved_ids)
        self.required = required  # [batch, n_reserved] bool, or None
        if required is not None and not self.reserved_ids:
            raise ValueError("`required` needs the `reserved_ids` it refers to. Received: reserved_ids=()")
        self.span = max((END_ID + 1, *(i + 1 for i in self.reserved_ids)))
        reserved = np.zeros([len(self.reserved_ids), self.span], np.float32)
        reserved[np.arange(len(self.reserved_ids)), list(self.reserved_ids)] = 1.0
        self._reserved = reserved  # [n_reserved, span] one-hot
        self._end = np.eye(self.span, dtype=np.float32)[END_ID]
        self._others = 1.0 - reserved.sum(axis=0) - self._end  # neither reserved nor END

    def of_rows(self, rows):
        """These rules for the input rows `rows` [live] of the batch."""
        if self.required is None:
            return self
        return _TokenRules(self.min_length, self.max_length, self.reserved_ids, tf.gather(self.required, rows))

    def initial_emitted(self, batch, width):
        if self.required is None:
            return ()
        return tf.zeros([batch, width, len(self.reserved_ids)], tf.bool)

    def emitted_after(self, emitted, parents, tokens):
        """[batch, width, n] after the alive slots extended `parents` [batch, width] with `tokens` [batch, width]."""
        if self.required is None:
            return ()
        return tf.gather(emitted, parents, batch_dims=1) | (tokens[:, :, None] == tf.constant(self.reserved_ids))

    def bias(self, step, emitted):
        """`(bias, tail)` for `top_candidates`: [span] and None, or [batch, width, span] and [batch, width]."""
        bias = forbidden_token_bias(self.span, step >= self.min_length)
        if self.required is None:  # reserved tokens are never emitted
            return bias + _NEG * self._reserved.sum(axis=0), None
        owed = self.required[:, None, :] & ~emitted  # [batch, width, n]
        missing = tf.reduce_sum(tf.cast(owed, tf.int32), axis=-1)  # [batch, width]
        room = self.max_length - step  # positions left, this one included
        end_blocked = tf.cast((missing > 0) & (missing < room), tf.float32)
        only_owed = tf.cast((missing > 0) & (missing + 1 >= room), tf.float32)
        not_owed = tf.einsum("bwn,ns->bws", tf.cast(~owed, tf.float32), self._reserved)
        forbidden = not_owed + end_blocked[:, :, None] * self._end + only_owed[:, :, None] * self._others
        return bias + _NEG * forbidden, _NEG * only_owed


def forbidden_token_bias(vocab, end_allowed=True):
    """[vocab] added to log-probabilities or logits: _NEG on PAD_ID and START_ID (never emitted),
    and on END_ID unless `end_allowed` (before `min_length`); 0 elsewhere."""
    ids = tf.range(vocab)
    end_forbidden = tf.logical_not(tf.convert_to_tensor(end_allowed, tf.bool))
    forbidden = (ids == PAD_ID) | (ids == START_ID) | ((ids == END_ID) & end_forbidden)
    return tf.where(forbidden, _NEG, 0.0)


def _backtrack(history, num_steps, end_steps, candidates):
    """Follows parent pointers from each (end step, candidate) [batch, n] to step 0.

    Returns token_ids [batch, n, num_steps] and attention [batch, n,
    num_steps, src_time], zero after each hypothesis' end step.
    """
    shape = tf.shape(end_steps)

    def body(t, slot, tokens, attention):
        candidate = tf.where(
            t == end_steps, candidates, tf.gather(history.alive_from.read(t), slot, batch_dims=1)
        )
        parent = tf.gather(history.parents.read(t), candidate, batch_dims=1)
        active = t <= end_steps
        token = tf.gather(history.tokens.read(t), candidate, batch_dims=1)
        alignment = tf.gather(history.attention.read(t), parent, batch_dims=1)
        return (
            t - 1,
            parent,
            tokens.write(t, tf.where(active, token, PAD_ID)),
            attention.write(t, tf.where(active[:, :, None], alignment, 0.0)),
        )

    _, _, tokens, attention = tf.while_loop(
        lambda t, *_: t >= 0,
        body,
        (
            num_steps - 1,
            tf.zeros(shape, tf.int32),
            tf.TensorArray(tf.int32, size=num_steps),
            tf.TensorArray(tf.float32, size=num_steps),
        ),
    )
    return tf.transpose(tokens.stack(), [1, 2, 0]), tf.transpose(attention.stack(), [1, 2, 0, 3])
