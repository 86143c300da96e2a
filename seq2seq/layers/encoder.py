"""The (bi)LSTM encoder shared by the translator and the classifier."""

import keras
import tensorflow as tf

from seq2seq.layers.lstm_sequence import run_lstm_layer
from seq2seq.tokens import PAD_ID

USE_CUDNN_VALUES = ("auto", True, False)


def resolve_use_cudnn(use_cudnn, needs_second_derivative):
    """`None` -> False when training differentiates twice, else "auto"."""
    if use_cudnn is None:
        return False if needs_second_derivative else "auto"
    if use_cudnn not in USE_CUDNN_VALUES:
        raise ValueError(
            f"Expected `use_cudnn` in {USE_CUDNN_VALUES} or None. Received: use_cudnn={use_cudnn!r}"
        )
    if use_cudnn is not False and needs_second_derivative:
        raise ValueError(
            "A saliency penalty (saliency_weight > 0) differentiates twice and cuDNN kernels "
            "have no second derivative: pass use_cudnn=False or None. "
            f"Received: use_cudnn={use_cudnn!r}"
        )
    return use_cudnn


def resolve_fused_sequence(use_cudnn, needs_second_derivative) -> bool:
    """Whether LSTMs train through `seq2seq.layers.lstm_sequence` rather than Keras' own loop.

    Yes on CPU when training differentiates once; no when it differentiates
    twice (the hand-written gradient has no derivative of its own), when
    cuDNN is asked for, or when a GPU is visible and `use_cudnn` is "auto"
    (cuDNN's fused kernel is the faster path there).
    """
    if needs_second_derivative or use_cudnn is True:
        return False
    return use_cudnn is False or not tf.config.list_logical_devices("GPU")


@keras.saving.register_keras_serializable(package="seq2seq")
class LSTMEncoder(keras.layers.Layer):
    """A stack of (bidirectional) LSTMs over embedded tokens.

    Args:
        units: LSTM units per direction. The outputs and final states have
            `output_dim = 2 * units` features when bidirectional (forward and
            backward concatenated), else `units`.
        num_layers: number of stacked LSTM layers.
        bidirectional: run each layer in both directions.
        dropout: dropout rate on the outputs of every layer but the last.
        use_cudnn: passed to every LSTM (`"auto"`, True or False). Must be
            False when training differentiates twice (saliency penalty):
            cuDNN kernels have no second derivative.
        fused_sequence: run each LSTM as `lstm_sequence` (one op per
            sequence, hand-written first derivative; faster than Keras' loop
            on CPU, docs/performance.md) instead of calling the Keras layer.
            Must be False when training differentiates twice
            (`resolve_fused_sequence`).

    Call args:
        inputs: [batch, time, features].
        mask: bool [batch, time], True at real tokens (padding must be at the
            end; the backward direction skips it).

    Returns:
        `(outputs, states)`: outputs [batch, time, output_dim] of the last
        layer, and per layer its final `(h, c)`, each [batch, output_dim],
        taken at each sequence's last real token.
    """

    def __init__(self, units, num_layers=1, bidirectional=False, dropout=0.0,
                 use_cudnn="auto", fused_sequence=False, **kwargs):
        super().__init__(**kwargs)
        if units < 1 or num_layers < 1:
            raise ValueError(
                "`units` and `num_layers` must be positive. "
                f"Received: units={units}, num_layers={num_layers}"
            )
        if use_cudnn not in USE_CUDNN_VALUES:
            raise ValueError(
                f"Expected `use_cudnn` in {USE_CUDNN_VALUES}. Received: use_cudnn={use_cudnn!r}"
            )
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.use_cudnn = use_cudnn
        self.fused_sequence = bool(fused_sequence)
        self.lstms = [self._make_lstm(i) for i in range(num_layers)]
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    @property
    def output_dim(self):
        return self.units * (2 if self.bidirectional else 1)

    def _make_lstm(self, index):
        def lstm(go_backwards=False):
            direction = "backward" if go_backwards else "forward"
            return keras.layers.LSTM(
                self.units, return_sequences=True, return_state=True,
                go_backwards=go_backwards, use_cudnn=self.use_cudnn,
                name=f"{direction}_lstm_{index}",
            )

        if not self.bidirectional:
            return lstm()
        # An explicit backward layer keeps `use_cudnn` (Bidirectional copies
        # the forward layer through its config, which does not hold it).
        return keras.layers.Bidirectional(
            lstm(), backward_layer=lstm(go_backwards=True), name=f"bidirectional_{index}"
        )

    def build(self, input_shape):
        sequences_shape = tuple(input_shape)
        for lstm in self.lstms:
            lstm.build(sequences_shape)
            sequences_shape = sequences_shape[:-1] + (self.output_dim,)

    def call(self, inputs, mask=None, training=False):
        states = []
        outputs = inputs
        lengths = None if mask is None else tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        for index, lstm in enumerate(self.lstms):
            if index:
                outputs = self.dropout_layer(outputs, training=training)
            if self.fused_sequence:
                outputs, *layer_states = self._fused_call(lstm, outputs, lengths)
            else:
                outputs, *layer_states = lstm(outputs, mask=mask, training=training)
            states.append(self._merge_directions(layer_states))
        return outputs, states

    def _fused_call(self, lstm, inputs, lengths):
        """`lstm(inputs, mask)` through `run_lstm_layer`: (outputs, h, c[, backward h, backward c])."""
        if not self.bidirectional:
            return run_lstm_layer(lstm, inputs, lengths=lengths)
        forward, *forward_states = run_lstm_layer(lstm.forward_layer, inputs, lengths=lengths)
        backward, *backward_states = run_lstm_layer(lstm.backward_layer, inputs, lengths=lengths, reverse=True)
        return [tf.concat([forward, backward], axis=-1), *forward_states, *backward_states]

    def _merge_directions(self, layer_states):
        if not self.bidirectional:
            return tuple(layer_states)  # (h, c)
        forward_h, forward_c, backward_h, backward_c = layer_states
        return (
            keras.ops.concatenate([forward_h, backward_h], axis=-1),
            keras.ops.concatenate([forward_c, backward_c], axis=-1),
        )

    def infer(self, token_ids, embedding, lookup_table=True):
        """Inference-only `call(embedding(token_ids), mask=token_ids != PAD_ID)`.

        Gives the same outputs at real tokens with about half the CPU time:
        both directions advance in one loop and, with `lookup_table`, the
        first layer's input projection is a row of `embedding @ kernel + bias`
        ([vocab, 4 * units], computed once per call) instead of a matmul per
        step. Outputs at padded positions are unspecified (finite); no final
        states, no dropout.

        Args:
            token_ids: int [batch, time], padded with `PAD_ID` at the end.
            embedding: the `keras.layers.Embedding` that feeds this encoder.
            lookup_table: precompute the table; pays off when the batch holds
                more tokens (batch * time) than the vocabulary.

        Returns:
            outputs [batch, time, output_dim].
        """
        # tf rather than keras.ops: one TensorArray slot per step keeps the
        # loop linear in time (keras.ops.scan would also store the cell states).
        mask = tf.transpose(tf.not_equal(token_ids, PAD_ID))[:, :, None]  # [time, batch, 1]
        tokens = tf.transpose(token_ids)  # [time, batch]
        dtype = self.compute_dtype
        outputs = None  # [time, batch, output_dim] of the previous layer
        for index, lstm in enumerate(self.lstms):
            cells = [lstm.forward_layer.cell, lstm.backward_layer.cell] if self.bidirectional \
                else [lstm.cell]
            kernels = [tf.cast(cell.kernel, dtype) for cell in cells]
            biases = [tf.cast(cell.bias, dtype) for cell in cells]
            if index == 0 and lookup_table:
                table = tf.cast(embedding.embeddings, dtype)
                tables = [tf.matmul(table, k) + b for k, b in zip(kernels, biases)]
                step_inputs = lambda d, t, tables=tables: tf.gather(tables[d], tokens[t])
            elif index == 0:
                table = tf.cast(embedding.embeddings, dtype)
                step_inputs = lambda d, t, kernels=kernels, biases=biases: (
                    tf.matmul(tf.gather(table, tokens[t]), kernels[d]) + biases[d])
            else:
                step_inputs = lambda d, t, x=outputs, kernels=kernels, biases=biases: (
                    tf.matmul(x[t], kernels[d]) + biases[d])
            outputs = self._fused_layer(cells, step_inputs, mask)
        return tf.transpose(outputs, [1, 0, 2])

    def _fused_layer(self, cells, step_inputs, mask):
        """Runs one layer's directions in one loop; returns [time, batch, output_dim]."""
        steps, batch = tf.shape(mask)[0], tf.shape(mask)[1]
        recurrent = [tf.cast(cell.recurrent_kernel, self.compute_dtype) for cell in cells]
        cell = cells[0]

        def body(s, states, arrays):
            new_states, new_arrays = [], []
            for d, ((h, c), array) in enumerate(zip(states, arrays)):
                t = s if d == 0 else steps - 1 - s  # the backward direction reads right to left
                z = step_inputs(d, t) + tf.matmul(h, recurrent[d])
                z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
                c_new = (cell.recurrent_activation(z_f) * c
                         + cell.recurrent_activation(z_i) * cell.activation(z_c))
                h_new = cell.recurrent_activation(z_o) * cell.activation(c_new)
                h, c = tf.where(mask[t], h_new, h), tf.where(mask[t], c_new, c)
                new_states.append((h, c))
                new_arrays.append(array.write(t, h))
            return s + 1, new_states, new_arrays

        zeros = tf.zeros([batch, self.units], self.compute_dtype)
        arrays = [tf.TensorArray(self.compute_dtype, size=steps, element_shape=[None, self.units])
                  for _ in cells]
        _, _, arrays = tf.while_loop(
            lambda s, *_: s < steps, body, (0, [(zeros, zeros) for _ in cells], arrays))
        return tf.concat([array.stack() for array in arrays], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return mask  # attached to `outputs`; the final states have no time axis

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            fused_sequence=self.fused_sequence,
            use_cudnn=self.use_cudnn,
        )
        return config
