"""The LSTM encoder-decoder with attention over the source.

    source_ids -> Embedding -> (Bi)LSTM encoder -> memory [batch, src_time, units']
    target_in  -> Embedding -> LSTM decoder (initial state: encoder's final state)
               -> SourceAttention over memory -> Dense(tanh)([decoder, context])
               = attentional state [batch, tgt_time, units']
               -> Dense(target_vocab_size) = logits [batch, tgt_time, vocab]

(`units'` is the encoder's output size: `2 * units` when bidirectional.)

With input feeding (Luong et al., 2015; OpenNMT's default) the first decoder
LSTM also reads the previous step's attentional state, so the decoder knows
what it attended to; teacher-forced training then runs the decoder, the
attention and the combination as one loop over target steps. Without it, each
of them is one batched op over [batch, tgt_time, ...]. Decoding uses the same
weights one step at a time through `encode` and `decode_step`.
"""

import keras
import tensorflow as tf
from keras import ops

from seq2seq.layers.attention import SourceAttention
from seq2seq.layers.encoder import LSTMEncoder, resolve_fused_sequence, resolve_use_cudnn
from seq2seq.layers.lstm_sequence import run_lstm_layer
from seq2seq.models.base import SaliencyModel
from seq2seq.tokens import PAD_ID


# `encode`'s entries that belong to the source sentence, not to a hypothesis.
PER_SOURCE_STATE = ("memory", "memory_keys", "memory_mask")


@keras.saving.register_keras_serializable(package="seq2seq")
class Translator(SaliencyModel):
    """LSTM encoder-decoder with Luong or Bahdanau attention.

    Args:
        vocab_size: source vocabulary size (ids in [0, vocab_size), 0 = pad).
        target_vocab_size: target vocabulary size; None = `vocab_size` (one
            shared SentencePiece vocabulary, the kit's default). The source and
            target embeddings are separate matrices either way.
        embed_dim: embedding size of source and target tokens.
        units: LSTM units per encoder direction. The decoder has the encoder's
            output size (`2 * units` when bidirectional) so that the encoder's
            final (concatenated) states initialise it directly.
        encoder_layers: stacked encoder LSTM layers.
        decoder_layers: stacked decoder LSTM layers; None = `encoder_layers`.
            Decoder layer i starts from encoder layer i's final state (zeros
            when the encoder has fewer layers).
        bidirectional: bidirectional encoder.
        attention: `"luong"` (general score) or `"bahdanau"` (additive).
        scaled_attention: divide the Luong scores by sqrt(memory depth)
            (`SourceAttention(scale_scores=True)`): keeps the attention from
            locking onto one source position early in training.
        input_feeding: feed the previous attentional state [batch, units'] to
            the first decoder LSTM with the target embedding.
        memory_embeddings: the attention reads each source position's
            embedding beside the encoder output (memory [batch, src_time,
            units' + embed_dim]), so a token's identity reaches the decoder
            directly: what copying names, numbers and placeholders needs.
        dropout: rate on the embeddings, between stacked LSTMs and before the
            output projection.
        use_cudnn: for every LSTM; None = False when `saliency_weight > 0`
            (cuDNN has no second derivative), else `"auto"`.
        project_real_only: in a train/test step without the saliency penalty
            (`task_forward`), run the output
            projection and the loss only at real target positions (gathered,
            `[1, real_tokens, vocab]`) instead of over the padded
            `[batch, tgt_time, vocab]`. A per-token loss (every loss in
            `seq2seq.losses`) gives the same value. Off by default: the
            gather and its gradient cost more than the padding they skip at
            the kit's padding rates (bucketed batches, ~13% padding): `seq2seq
            bench saliency` weight-0 translator step 1.14x a plain step with
            it, 0.97x without; `seq2seq bench train` 2,252 vs 2,305 tokens/s.
            The saliency penalty and `sample_weight` always use the padded path.
        **kwargs: `saliency_weight`, `saliency_target`, `saliency_reduction`
            (see `SaliencyModel`) and Keras Model arguments (`name`, ...).

    Inputs: `(source_ids [batch, src_time], target_in [batch, tgt_time])`,
    optionally with a third element, the source annotation [batch, src_time].
    Both id tensors are padded with `PAD_ID` at the end.

    Outputs: {"logits": float32 [batch, tgt_time, target_vocab_size],
    "attention": [batch, tgt_time, src_time]}. The decoder runs without the
    target mask (it is causal, so real positions never see the trailing
    padding): logits at padded target positions are meaningless and the
    loss must ignore them (targets equal to `PAD_ID`).
    """

    per_source_state = PER_SOURCE_STATE

    def __init__(
        self,
        vocab_size,
        target_vocab_size=None,
        embed_dim=256,
        units=256,
        encoder_layers=1,
        decoder_layers=None,
        bidirectional=False,
        attention="luong",
        scaled_attention=False,
        input_feeding=False,
        memory_embeddings=False,
        dropout=0.0,
        use_cudnn=None,
        project_real_only=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim),
                            ("target_vocab_size", target_vocab_size or vocab_size),
                            ("decoder_layers", decoder_layers or encoder_layers)):
            if value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.vocab_size = vocab_size
        self.target_vocab_size = target_vocab_size or vocab_size
        self.embed_dim = embed_dim
        self.units = units
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers or encoder_layers
        self.bidirectional = bool(bidirectional)
        self.attention_score = attention
        self.scaled_attention = bool(scaled_attention)
        self.input_feeding = bool(input_feeding)
        self.memory_embeddings = bool(memory_embeddings)
        self.dropout = float(dropout)
        self.use_cudnn = resolve_use_cudnn(use_cudnn, self.needs_second_derivative)
        self.project_real_only = bool(project_real_only)

        with self.sublayer_dtype_policy():
            self.source_embedding = keras.layers.Embedding(
                vocab_size, embed_dim, mask_zero=True, name="source_embedding")
            self.target_embedding = keras.layers.Embedding(
                self.target_vocab_size, embed_dim, mask_zero=True, name="target_embedding")
            self.encoder = LSTMEncoder(
                units, encoder_layers, self.bidirectional, self.dropout, self.use_cudnn,
                resolve_fused_sequence(self.use_cudnn, self.needs_second_derivative), name="encoder")
            self.decoder_units = self.encoder.output_dim
            self.decoder_lstms = [
                keras.layers.LSTM(self.decoder_units, return_sequences=True, return_state=True,
                                  use_cudnn=self.use_cudnn, name=f"decoder_lstm_{i}")
                for i in range(self.decoder_layers)
            ]
            self.attention = SourceAttention(score=attention, scale_scores=self.scaled_attention, name="attention")
            self.attention_combine = keras.layers.Dense(
                self.decoder_units, activation="tanh", name="attention_combine")
            self.output_projection = keras.layers.Dense(
                self.target_vocab_size, name="output_projection")
            self.dropout_layer = keras.layers.Dropout(self.dropout)
        self.build()

    # --- building and saving ---------------------------------------------------

    def build(self, input_shape=None):
        """Creates every weight (at construction: shapes follow from the arguments)."""
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        self.encoder.build((None, None, self.embed_dim))
        for i, lstm in enumerate(self.decoder_lstms):
            lstm.build((None, None, self.decoder_input_dim if i == 0 else self.decoder_units))
        self.attention.build((None, None, self.decoder_units), (None, None, self.memory_dim))
        self.attention_combine.build((None, self.decoder_units + self.memory_dim))
        self.output_projection.build((None, self.decoder_units))

    @property
    def memory_dim(self):
        """Features per source position the attention reads: units' (+ embed_dim)."""
        return self.decoder_units + (self.embed_dim if self.memory_embeddings else 0)

    @property
    def decoder_input_dim(self):
        """Features the first decoder LSTM reads per step: the embedding (+ the fed attentional state)."""
        return self.embed_dim + (self.decoder_units if self.input_feeding else 0)

    @property
    def fused_sequence(self) -> bool:
        """Whether the decoder LSTMs, like the encoder's, train through `lstm_sequence` (not saved:
        it follows from the penalty and the machine, `resolve_fused_sequence`)."""
        return self.encoder.fused_sequence

    def get_build_config(self):
        return {"input_shape": None}  # `build` needs no shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            target_vocab_size=self.target_vocab_size,
            embed_dim=self.embed_dim,
            units=self.units,
            encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers,
            bidirectional=self.bidirectional,
            attention=self.attention_score,
            scaled_attention=self.scaled_attention,
            input_feeding=self.input_feeding,
            memory_embeddings=self.memory_embeddings,
            dropout=self.dropout,
            use_cudnn=self.use_cudnn,
            project_real_only=self.project_real_only,
        )
        return config

    # --- SaliencyModel hooks -----------------------------------------------------

    def split_inputs(self, x):
        """`(source_ids, target_in[, annotation])` -> `((source_ids, target_in), annotation)`."""
        if not isinstance(x, (tuple, list)) or len(x) not in (2, 3):
            raise ValueError(
                "Translator inputs are (source_ids, target_in) or "
                f"(source_ids, target_in, annotation). Received: {type(x).__name__} "
                f"of length {len(x) if isinstance(x, (tuple, list)) else 'n/a'}"
            )
        return (x[0], x[1]), (x[2] if len(x) == 3 else None)

    def embed_source(self, inputs, training=False):
        return self.source_embedding(inputs[0])

    def forward(self, inputs, source_embedding, training=False):
        features, attention = self.decoder_features(inputs, source_embedding, training=training)
        return {"logits": self.project(features), "attention": attention}

    def decoder_features(self, inputs, source_embedding, training=False):
        """`forward` without the output projection.

        Returns `(features [batch, tgt_time, units'], attention [batch, tgt_time,
        src_time])`; `project(features)` gives the logits, so a training step
        can project only the real (non-padding) positions.
        """
        source_ids, target_in = inputs
        source_mask = ops.not_equal(source_ids, PAD_ID)
        memory, decoder_states = self._encode(source_embedding, source_mask, training)
        decoder_out = self.dropout_layer(self.target_embedding(target_in), training=training)
        if self.input_feeding:
            attentional, attention = self._input_fed_decoder(
                decoder_out, memory, source_mask, decoder_states, training)
            return self.dropout_layer(attentional, training=training), attention
        for i, lstm in enumerate(self.decoder_lstms):
            if i:
                decoder_out = self.dropout_layer(decoder_out, training=training)
            if self.fused_sequence:
                decoder_out, _, _ = run_lstm_layer(lstm, decoder_out, initial_state=decoder_states[i])
            else:
                decoder_out, _, _ = lstm(decoder_out, initial_state=list(decoder_states[i]), training=training)
        context, attention = self.attention(decoder_out, memory, memory_mask=source_mask)
        return self._combine(decoder_out, context, training), attention

    def _input_fed_decoder(self, embedded, memory, source_mask, decoder_states, training):
        """The decoder with input feeding, as a loop over target steps.

        Args:
            embedded: [batch, tgt_time, embed_dim] target embeddings (dropout applied).
            memory: [batch, src_time, units']; source_mask: bool [batch, src_time].
            decoder_states: one `(h, c)` [batch, units'] per decoder layer.
        Returns:
            `(attentional [batch, tgt_time, units'] before dropout, attention
            [batch, tgt_time, src_time])`, the same numbers as `decode_step`
            run step by step from `encode`.
        """
        state = self._initial_state(memory, source_mask, decoder_states)
        carried = tuple(key for key in state if key not in PER_SOURCE_STATE)

        def step(carry, x):  # carry: (attentional, attention, *carried states); x: [batch, embed]
            previous = dict(state, **dict(zip(carried, carry[2:])))
            attentional, new_state, attention = self._decoder_step(x, previous, training)
            return (attentional, attention) + tuple(new_state[key] for key in carried)

        batch, src_time = tf.shape(memory)[0], tf.shape(memory)[1]
        initial = (tf.zeros([batch, self.decoder_units], self.compute_dtype),
                   tf.zeros([batch, src_time], self.compute_dtype)) + tuple(state[k] for k in carried)
        outputs = tf.scan(step, tf.transpose(embedded, [1, 0, 2]), initializer=initial)
        return tf.transpose(outputs[0], [1, 0, 2]), tf.transpose(outputs[1], [1, 0, 2])

    # --- the task loss at real positions only ------------------------------------

    def task_forward(self, inputs, source_embedding, y, sample_weight, training=False):
        """Logits at the real positions of `y` only, when `project_real_only` and no sample weights.

        Returns `({"logits": [1, real_tokens, vocab], "attention": [batch,
        tgt_time, src_time]}, real_y [1, real_tokens])`: the real tokens of the
        batch as one sequence, so that any per-token loss and metric reads them
        as a batch of one with no padding. (A step with the saliency penalty
        runs `forward` instead: the penalty needs the full teacher-forced pass.)
        """
        if not self.project_real_only or sample_weight is not None:
            return super().task_forward(inputs, source_embedding, y, sample_weight, training=training)
        features, attention = self.decoder_features(inputs, source_embedding, training=training)
        real = tf.not_equal(y, tf.cast(PAD_ID, y.dtype))  # [batch, tgt_time]
        logits = self.project(tf.boolean_mask(features, real))  # [real_tokens, vocab]
        return {"logits": logits[None], "attention": attention}, tf.boolean_mask(y, real)[None]

    # --- incremental decoding ----------------------------------------------------

    def encode(self, source_ids, training=False):
        """Encodes once for step-by-step decoding.

        Returns a flat dict of tensors, all with a leading batch axis (a beam
        search may tile and gather every entry along axis 0):
            "memory" [batch, src_time, memory_dim]: encoder outputs (+ source embeddings).
            "memory_keys" [batch, src_time, key_dim]: `attention.memory_keys(memory)`.
            "memory_mask" bool [batch, src_time]: True at real source tokens.
            "h_{i}", "c_{i}" [batch, units']: decoder layer i's LSTM state.
            "context" [batch, units']: the last attention context (zeros
                before the first step).
            "feed" [batch, units']: with input feeding, the last attentional
                state (zeros before the first step).
        The memory entries (`PER_SOURCE_STATE`) are constant while decoding
        one source sentence, and `decode_step` also takes them untiled: one
        row per source while the other entries have `width` adjacent rows
        per source (`seq2seq.decoding.encode_and_decode` does so).
        """
        source_mask = ops.not_equal(source_ids, PAD_ID)
        embedded = self.source_embedding(source_ids)
        memory, decoder_states = self._encode(embedded, source_mask, training)
        return self._initial_state(memory, source_mask, decoder_states)

    def _initial_state(self, memory, source_mask, decoder_states):
        """The decoding state before the first step (the entries `encode` documents)."""
        state = {
            "memory": memory,
            "memory_keys": self.attention.memory_keys(memory),
            "memory_mask": source_mask,
            "context": ops.zeros_like(memory[:, 0, :]),
        }
        if self.input_feeding:
            state["feed"] = ops.zeros_like(memory[:, 0, : self.decoder_units])
        for i, (h, c) in enumerate(decoder_states):
            state[f"h_{i}"], state[f"c_{i}"] = h, c
        return state

    def decode_step(self, token_ids, state, training=False):
        """One decoder step from the previous tokens.

        Args:
            token_ids: int [batch], the previous target tokens (`START_ID` first).
            state: the dict from `encode` or from the previous `decode_step`.

        Returns:
            `(logits float32 [batch, target_vocab_size], new_state, attention
            [batch, src_time])`, the same numbers as the teacher-forced call
            at this position.
        """
        # A direct lookup: the Embedding layer would attach a padding mask that
        # the LSTM cell cannot take (and warns about); a decoded step is never padding.
        embeddings = self.target_embedding.embeddings
        x = ops.cast(ops.take(embeddings, token_ids, axis=0), self.compute_dtype)  # [batch, embed]
        x = self.dropout_layer(x, training=training)
        attentional, new_state, attention = self._decoder_step(x, state, training)
        return self.project(self.dropout_layer(attentional, training=training)), new_state, attention

    def _decoder_step(self, x, state, training):
        """[batch, embed_dim] embedded tokens -> (attentional [batch, units'], new_state, attention)."""
        new_state = dict(state)
        if self.input_feeding:
            x = ops.concatenate([x, state["feed"]], axis=-1)
        for i, lstm in enumerate(self.decoder_lstms):
            if i:
                x = self.dropout_layer(x, training=training)
            x, (h, c) = lstm.cell(x, [state[f"h_{i}"], state[f"c_{i}"]], training=training)
            new_state[f"h_{i}"], new_state[f"c_{i}"] = h, c
        context, attention = self._attend(x, state)
        new_state["context"] = context
        attentional = self._attentional(x, context)
        if self.input_feeding:
            new_state["feed"] = attentional
        return attentional, new_state, attention

    def _attend(self, query, state):
        """Attention of [rows, units'] queries; rows = sources x width (beam slots of a source adjacent).

        The memory entries may hold one row per source (`PER_SOURCE_STATE`):
        each source's `width` queries then attend to it together, as the
        target positions of a teacher-forced call do, instead of reading
        `width` tiled copies of it.
        """
        memory = state["memory"]
        grouped = ops.reshape(query, (ops.shape(memory)[0], -1, ops.shape(query)[-1]))  # [sources, width, units']
        context, attention = self.attention(
            grouped, memory, memory_mask=state["memory_mask"], keys=state["memory_keys"])
        return (ops.reshape(context, (-1, ops.shape(context)[-1])),
                ops.reshape(attention, (-1, ops.shape(attention)[-1])))

    # --- shared pieces -----------------------------------------------------------

    def _encode(self, source_embedding, source_mask, training):
        """Returns the memory and one `(h, c)` initial state per decoder layer."""
        embedded = self.dropout_layer(source_embedding, training=training)
        memory, encoder_states = self.encoder(embedded, mask=source_mask, training=training)
        zeros = ops.zeros_like(memory[:, 0, :])
        if self.memory_embeddings:
            memory = ops.concatenate([memory, ops.cast(embedded, memory.dtype)], axis=-1)
        decoder_states = [
            encoder_states[i] if i < len(encoder_states) else (zeros, zeros)
            for i in range(self.decoder_layers)
        ]
        return memory, decoder_states

    def project(self, features):
        """[..., units'] decoder features -> [..., target_vocab_size] float32 logits.

        float32 even under a mixed precision policy, so that softmax and loss
        stay accurate over a large vocabulary.
        """
        return ops.cast(self.output_projection(features), "float32")

    def _combine(self, decoder_out, context, training):
        """The attentional state after dropout, [..., units']."""
        return self.dropout_layer(self._attentional(decoder_out, context), training=training)

    def _attentional(self, decoder_out, context):
        """Luong's attentional state: tanh(W [decoder_out; context]), [..., units']."""
        return self.attention_combine(ops.concatenate([decoder_out, context], axis=-1))
