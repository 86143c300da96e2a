"""Scripted decoders shared by the decoding tests: `TreeModel` (a prefix table gives each step's
probabilities), `RandomTranslator` (a tiny fixed-weight recurrent decoder) and their vocabulary.

Ids 4.. are the letters a, b, c, ...; a decoded row reads as a string with "."
for the end token and "_" for padding, so "ab.__" is a, b, end, then padding.
"""

import math

import numpy as np
import tensorflow as tf

from seq2seq import decoding
from seq2seq.tokens import START_ID

CHARS = "_?^." + "abcdefghij"  # PAD, UNK, START, END, then letters
VOCAB = len(CHARS)
SRC_TIME = 4


def as_strings(token_ids):
    return ["".join(CHARS[i] for i in row) for row in np.asarray(token_ids)]


class TreeModel:
    """A scripted decoder: `trees[row](prefix) -> {next char: probability}`.

    The prefix travels in the decoder state, so it is right only if the loop
    reorders state with its beams. Attention is one-hot on the source position
    of the last letter fed (a -> 0, b -> 1, ...; the start token -> last).
    """

    def __init__(self, *trees, max_length=8):
        self.trees = trees
        self.max_length = max_length

    def initial_state(self):
        batch = len(self.trees)
        return {
            "row": tf.range(batch),
            "prefix": tf.zeros([batch, self.max_length + 1], tf.int32),
        }

    def step(self, token_ids, state):
        prefix = state["prefix"].numpy().copy()
        rows = state["row"].numpy()
        logits = np.full([len(rows), VOCAB], -1e9, np.float32)
        attention = np.zeros([len(rows), SRC_TIME], np.float32)
        for i, token in enumerate(token_ids.numpy()):
            prefix[i, np.count_nonzero(prefix[i])] = token
            text = "".join(CHARS[t] for t in prefix[i] if t != START_ID and t != 0)
            for char, p in self.trees[rows[i]](text).items():
                logits[i, CHARS.index(char)] = math.log(p)
            attention[i, SRC_TIME - 1 if token == START_ID else (token - 4) % SRC_TIME] = 1.0
        new_state = {"row": state["row"], "prefix": tf.constant(prefix)}
        return tf.constant(logits), new_state, tf.constant(attention)

    def greedy(self, **kwargs):
        kwargs.setdefault("max_length", self.max_length)
        return decoding.greedy_decode(self.step, self.initial_state(), len(self.trees), **kwargs)

    def beam(self, beam_size, **kwargs):
        kwargs.setdefault("max_length", self.max_length)
        kwargs.setdefault("length_penalty", 0.0)
        return decoding.beam_search_decode(
            self.step, self.initial_state(), len(self.trees), beam_size=beam_size, **kwargs
        )


def tree(table):
    """A prefix table; an unlisted prefix ends for sure."""
    return lambda prefix: table.get(prefix, {".": 1.0})


ABC = tree({"": {"a": 0.6, "b": 0.4}, "a": {"b": 0.7, "c": 0.3}, "ab": {"c": 0.9, ".": 0.1}})
# Greedy takes "a" (0.6) but every continuation of it is poor; "bc." is 0.38.
TRAP = tree(
    {"": {"a": 0.6, "b": 0.4}, "a": {"c": 0.35, "d": 0.35, "e": 0.3}, "b": {"c": 0.95, "d": 0.05}}
)
# "." ends at once (0.3); both children of "a" (0.35) outscore it for a step.
EARLY_END = tree(
    {"": {".": 0.3, "a": 0.7}, "a": {"b": 0.5, "c": 0.5}, "ab": {".": 0.5, "d": 0.5},
     "ac": {".": 0.5, "d": 0.5}}
)
# "." is 0.55; "abcde." is 0.45, longer and less likely.
SHORT_OR_LONG = tree(
    {"": {".": 0.55, "a": 0.45}, "a": {"b": 1.0}, "ab": {"c": 1.0}, "abc": {"d": 1.0},
     "abcd": {"e": 1.0}}
)
FOREVER = lambda prefix: {"a": 1.0}  # noqa: E731


class RandomTranslator:
    """A tiny recurrent decoder with fixed random weights, all TensorFlow ops."""

    def __init__(self, units=6, seed=0):
        rng = np.random.default_rng(seed)
        self.embedding = tf.constant(rng.normal(size=[VOCAB, units]), tf.float32)
        self.recurrent = tf.constant(rng.normal(size=[units, units]), tf.float32)
        self.output = tf.constant(rng.normal(size=[units, VOCAB]) * 2, tf.float32)
        self.traces = 0

    def encode(self, source_ids):
        self.traces += 1  # a Python side effect: runs only while tracing
        memory = tf.gather(self.embedding, source_ids)  # [batch, src_time, units]
        return {"memory": memory, "hidden": tf.reduce_mean(memory, axis=1)}

    def decode_step(self, token_ids, state):
        hidden = tf.tanh(tf.gather(self.embedding, token_ids) + state["hidden"] @ self.recurrent)
        attention = tf.nn.softmax(tf.einsum("bsu,bu->bs", state["memory"], hidden))
        logits = hidden @ self.output
        return logits, {"memory": state["memory"], "hidden": hidden}, attention
