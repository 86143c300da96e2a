"""A Keras LSTM layer's training pass as one sequence op with a hand-written gradient.

`keras.layers.LSTM` on CPU runs a `tf.while_loop` whose gradient TensorFlow
derives step by step: every backward step multiplies by the input and the
recurrent kernel and adds into both weight gradients. Here only the recurrent
products stay in the loops; the input projection, the input gradient and both
weight gradients are one large matmul each over all time steps, and one
sigmoid covers the four gates (tanh(z) = 2 sigmoid(2z) - 1). Same weights,
same numbers to float rounding, first derivatives only: a training step that
differentiates twice (the saliency penalty) uses Keras' loop.
"""

import tensorflow as tf


def lstm_sequence(x, h0, c0, kernel, recurrent_kernel, bias):
    """Runs an LSTM over every step of `x` (Keras' gate order i, f, c, o; sigmoid gates, tanh).

    Args:
        x: [time, batch, features], time-major.
        h0, c0: [batch, units] initial state.
        kernel: [features, 4 * units]; recurrent_kernel: [units, 4 * units];
            bias: [4 * units] (a `keras.layers.LSTMCell`'s weights).
    Returns:
        `(h, c)`, each [time, batch, units]: the state after every step.
    """

    @tf.custom_gradient
    def run(x, h0, c0, kernel, recurrent_kernel, bias):
        steps, units, dtype = tf.shape(x)[0], tf.shape(h0)[1], x.dtype
        ones = tf.ones([units], dtype)
        gate_scale = tf.concat([ones, ones, 2.0 * ones, ones], 0)  # the candidate's tanh as a sigmoid
        inputs_z = (tf.einsum("tbf,fg->tbg", x, kernel) + bias) * gate_scale  # [time, batch, 4 units]
        scaled_recurrent = recurrent_kernel * gate_scale

        def array():
            return tf.TensorArray(dtype, size=steps, element_shape=tf.TensorShape([None, None]))

        def step(t, h, c, hs, cs, gates):
            s = tf.sigmoid(inputs_z[t] + tf.matmul(h, scaled_recurrent))  # [batch, 4 units]
            i, f, g, o = tf.split(s, 4, axis=1)
            c = f * c + i * (2.0 * g - 1.0)
            h = o * tf.tanh(c)
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), gates.write(t, s)

        _, _, _, hs, cs, gates = tf.while_loop(
            lambda t, *_: t < steps, step, (0, h0, c0, array(), array(), array()))
        h_all, c_all, s_all = hs.stack(), cs.stack(), gates.stack()

        def gradient(dh_all, dc_all):
            i, f, g, o = tf.split(s_all, 4, axis=2)
            tanh_c = tf.tanh(c_all)
            c_prev = tf.concat([c0[None], c_all[:-1]], 0)
            h_to_c = o * (1.0 - tanh_c * tanh_c)  # d c_t / d h_t through h = o tanh(c)
            di, df, dg, do = tf.split(s_all * (1.0 - s_all), 4, axis=2)
            # d loss / d pre-activations = [dc, dc, dc, dh] * this, per step.
            gate_factors = tf.concat([di * (2.0 * g - 1.0), df * c_prev, 4.0 * dg * i, do * tanh_c], 2)
            recurrent_t = tf.transpose(recurrent_kernel)

            def back(t, dh_next, dc_next, dzs):
                dh = dh_all[t] + dh_next
                dc = dc_all[t] + dc_next + dh * h_to_c[t]
                dz = tf.concat([dc, dc, dc, dh], 1) * gate_factors[t]
                return t - 1, tf.matmul(dz, recurrent_t), dc * f[t], dzs.write(t, dz)

            _, dh0, dc0, dzs = tf.while_loop(
                lambda t, *_: t >= 0, back, (steps - 1, tf.zeros_like(h0), tf.zeros_like(c0), array()))
            dz = dzs.stack()  # [time, batch, 4 units]
            flat_dz = tf.reshape(dz, [-1, 4 * units])
            h_prev = tf.concat([h0[None], h_all[:-1]], 0)
            dx = tf.einsum("tbg,fg->tbf", dz, kernel)
            dkernel = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[2]]), flat_dz, transpose_a=True)
            drecurrent = tf.matmul(tf.reshape(h_prev, [-1, units]), flat_dz, transpose_a=True)
            return dx, dh0, dc0, dkernel, drecurrent, tf.reduce_sum(flat_dz, 0)

        return (h_all, c_all), gradient

    return run(x, h0, c0, kernel, recurrent_kernel, bias)


def run_lstm_layer(lstm, inputs, initial_state=None, lengths=None, reverse=False):
    """What `lstm(inputs, initial_state, mask)` returns for right-padded inputs, through `lstm_sequence`.

    Args:
        lstm: a built `keras.layers.LSTM` with the default activations (its
            weights are used; the layer itself is not called).
        inputs: [batch, time, features].
        initial_state: `[h, c]`, each [batch, units], or None for zeros.
        lengths: int [batch] real steps per row (padding at the end), or None
            when every step is real.
        reverse: read each row's real steps last to first, as the backward
            layer of `keras.layers.Bidirectional` does.
    Returns:
        `(outputs [batch, time, units], h [batch, units], c [batch, units])`:
        outputs in input order, zero at padded steps (a unidirectional Keras
        layer repeats the last real output there; masks keep both out of
        everything downstream); the state after each row's last real step
        read (its initial state for an empty row).
    """
    cell = lstm.cell
    dtype = inputs.dtype
    batch, units = tf.shape(inputs)[0], cell.units
    if initial_state is None:
        initial_state = [tf.zeros([batch, units], dtype)] * 2
    h0, c0 = (tf.cast(state, dtype) for state in initial_state)
    x = tf.transpose(inputs, [1, 0, 2])  # [time, batch, features]
    if reverse:
        x = tf.reverse(x, [0]) if lengths is None else tf.reverse_sequence(x, lengths, seq_axis=0, batch_axis=1)
    hs, cs = lstm_sequence(x, h0, c0, *(tf.cast(w, dtype) for w in (cell.kernel, cell.recurrent_kernel, cell.bias)))
    if lengths is None:
        h, c = hs[-1], cs[-1]
        if reverse:
            hs = tf.reverse(hs, [0])
    else:
        lengths = tf.cast(lengths, tf.int32)
        last = tf.stack([tf.maximum(lengths - 1, 0), tf.range(batch)], axis=1)
        empty = tf.equal(lengths, 0)[:, None]
        h = tf.where(empty, h0, tf.gather_nd(hs, last))
        c = tf.where(empty, c0, tf.gather_nd(cs, last))
        if reverse:
            hs = tf.reverse_sequence(hs, lengths, seq_axis=0, batch_axis=1)
        real = tf.sequence_mask(lengths, tf.shape(x)[0], dtype=dtype)  # [batch, time]
        hs = hs * tf.transpose(real)[:, :, None]
    return tf.transpose(hs, [1, 0, 2]), h, c

