"""The attention classifier: (Bi)LSTM, feed-forward attention pooling, softmax.

One forward pass returns the class probabilities and the attention weights
together, so serving never recomputes the LSTM to explain a prediction:

    token_ids -> Embedding -> (Bi)LSTM -> FeedForwardAttention -> Dense(num_classes)
"""

import types
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from seq2seq.layers.attention import FeedForwardAttention
from seq2seq.layers.encoder import LSTMEncoder, resolve_fused_sequence, resolve_use_cudnn
from seq2seq.models.base import SaliencyModel
from seq2seq.tokens import PAD_ID


@keras.saving.register_keras_serializable(package="seq2seq")
class Classifier(SaliencyModel):
    """Sequence classifier with attention pooling.

    Args:
        vocab_size: token vocabulary size (ids in [0, vocab_size), 0 = pad).
        num_classes: number of labels.
        embed_dim: token embedding size.
        units: LSTM units per direction (a BiLSTM outputs `2 * units`).
        encoder_layers: stacked (Bi)LSTM layers.
        bidirectional: bidirectional LSTMs.
        dropout: rate on the embeddings, between stacked LSTMs and on the
            pooled vector.
        use_cudnn: for every LSTM; None = False when `saliency_weight > 0`
            (cuDNN has no second derivative), else `"auto"`.
        **kwargs: `saliency_weight`, `saliency_target`, `saliency_reduction`
            (see `SaliencyModel`) and Keras Model arguments (`name`, ...).

    Inputs: token_ids [batch, time] padded with `PAD_ID` at the end, or
    `(token_ids, annotation)` with annotation [batch, time].

    Outputs: {"logits": float32 [batch, num_classes], "probabilities": [batch,
    num_classes], "attention": [batch, time]}; padding gets exactly 0
    attention. Use `predict_with_attention` for fast batched inference.
    """

    def __init__(
        self,
        vocab_size,
        num_classes,
        embed_dim=64,
        units=64,
        encoder_layers=1,
        bidirectional=True,
        dropout=0.0,
        use_cudnn=None,
        **kwargs,
    ):
        shared = kwargs.pop("_shared_layers", None)  # see `from_translator`
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes),
                            ("embed_dim", embed_dim)):
            if value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.vocab_size = vocab_size
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.units = units
        self.encoder_layers = encoder_layers
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.use_cudnn = resolve_use_cudnn(use_cudnn, self.needs_second_derivative)

        with self.sublayer_dtype_policy():
            if shared is None:
                self.source_embedding = keras.layers.Embedding(
                    vocab_size, embed_dim, mask_zero=True, name="source_embedding")
                self.encoder = LSTMEncoder(
                    units, encoder_layers, self.bidirectional, self.dropout, self.use_cudnn,
                    resolve_fused_sequence(self.use_cudnn, self.needs_second_derivative), name="encoder")
            else:
                self.source_embedding, self.encoder = shared
                if self.needs_second_derivative:  # a shared translator encoder differentiates twice here
                    self.encoder.fused_sequence = False
            self.pooling = FeedForwardAttention(return_attention=True, name="attention_pooling")
            self.classifier_head = keras.layers.Dense(num_classes, name="classifier_head")
            self.dropout_layer = keras.layers.Dropout(self.dropout)
        # (jit_compile, lookup_table) -> tf.function, in a plain object:
        # SavedModel export and checkpoints ignore it (a dict would be tracked).
        self._predict_functions = types.SimpleNamespace(cache={})
        self.build()

    @classmethod
    def from_translator(cls, translator, num_classes, **kwargs):
        """A classifier on top of `translator`'s source embedding and encoder.

        The two models share those layers (training one changes the other);
        only the attention pooling and the output layer are new. The
        classifier's config repeats the translator's encoder settings, so a
        saved classifier reloads on its own, with its own copy of the weights.

        Args:
            translator: a `Translator`.
            num_classes: number of labels.
            **kwargs: saliency options, `dropout` (default: the translator's),
                `name`, ... (`use_cudnn` is the translator's).
        """
        encoder = translator.encoder
        if kwargs.get("saliency_weight", 0.0) > 0 and encoder.use_cudnn is not False:
            raise ValueError(
                "A saliency-trained classifier differentiates twice, which cuDNN kernels cannot, "
                f"but the translator's encoder has use_cudnn={encoder.use_cudnn!r}: build the "
                "translator with use_cudnn=False (or saliency_weight > 0) to share it."
            )
        kwargs.setdefault("dropout", translator.dropout)
        return cls(
            vocab_size=translator.vocab_size,
            num_classes=num_classes,
            embed_dim=translator.embed_dim,
            units=encoder.units,
            encoder_layers=encoder.num_layers,
            bidirectional=encoder.bidirectional,
            use_cudnn=encoder.use_cudnn,
            _shared_layers=(translator.source_embedding, encoder),
            **kwargs,
        )

    # --- building and saving ---------------------------------------------------

    def build(self, input_shape=None):
        """Creates every weight (at construction: shapes follow from the arguments)."""
        if not self.source_embedding.built:
            self.source_embedding.build((None, None))
        if not self.encoder.built:
            self.encoder.build((None, None, self.embed_dim))
        self.pooling.build((None, None, self.encoder.output_dim))
        self.classifier_head.build((None, self.encoder.output_dim))

    def get_build_config(self):
        return {"input_shape": None}  # `build` needs no shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            num_classes=self.num_classes,
            embed_dim=self.embed_dim,
            units=self.units,
            encoder_layers=self.encoder_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            use_cudnn=self.use_cudnn,
        )
        return config

    # --- SaliencyModel hooks -----------------------------------------------------

    def split_inputs(self, x):
        """`token_ids` or `(token_ids[, annotation])` -> `(token_ids, annotation or None)`."""
        if not isinstance(x, (tuple, list)):
            return x, None
        if len(x) not in (1, 2):
            raise ValueError(
                "Classifier inputs are token_ids or (token_ids, annotation). "
                f"Received: {type(x).__name__} of length {len(x)}"
            )
        return x[0], (x[1] if len(x) == 2 else None)

    def embed_source(self, inputs, training=False):
        return self.source_embedding(inputs)

    def forward(self, inputs, source_embedding, training=False):
        mask = ops.not_equal(inputs, PAD_ID)
        embedded = self.dropout_layer(source_embedding, training=training)
        outputs, _ = self.encoder(embedded, mask=mask, training=training)
        return self._head(outputs, mask, training)

    def _head(self, outputs, mask, training):
        """Encoder outputs [batch, time, features] -> the output dict."""
        pooled, attention = self.pooling(outputs, mask=mask)
        logits = self.classifier_head(self.dropout_layer(pooled, training=training))
        logits = ops.cast(logits, "float32")  # accurate softmax under mixed precision
        return {
            "logits": logits,
            "probabilities": ops.softmax(logits, axis=-1),
            "attention": attention,
        }

    # --- fast inference ----------------------------------------------------------

    def predict_with_attention(self, token_ids, batch_size=1024, jit_compile=None,
                               parallel_batches=2):
        """Labels, probabilities and attention for many sequences at once.

        The same numbers as `call`, from one compiled graph per batch
        (`LSTMEncoder.infer`, optionally XLA-compiled): no per-example Python
        and no `model.predict` machinery. Sequences are sorted by length and
        each batch is cut to its longest sequence (see `_length_sorted_batches`).

        Args:
            token_ids: int array-like [examples, time], padded with `PAD_ID`
                at the end.
            batch_size: examples per graph call.
            jit_compile: compile with XLA: about a third less CPU time, but
                the first batch of each shape pays a compilation of a few
                seconds. None = XLA when there are at least 4 full batches.
            parallel_batches: batches run at once from Python threads (an XLA
                loop uses one core; 2 fills a 2-core CPU).

        Returns:
            dict of NumPy arrays: "labels" int [examples], "probabilities"
            [examples, num_classes], "attention" [examples, time].
        """
        token_ids = np.asarray(token_ids, dtype=np.int32)
        if token_ids.ndim != 2:
            raise ValueError(
                f"`token_ids` must be 2-D [examples, time]. Received shape: {token_ids.shape}"
            )
        examples, time = token_ids.shape
        if jit_compile is None:
            jit_compile = examples >= 4 * batch_size

        def run(rows_and_batch):
            rows, batch = rows_and_batch
            predict = self._compiled_predict(bool(jit_compile), batch.size >= self.vocab_size)
            batch_probabilities, batch_attention = predict(batch)
            return rows, batch_probabilities.numpy(), batch_attention.numpy()

        probabilities = np.zeros((examples, self.num_classes), np.float32)
        attention = np.zeros((examples, time), np.float32)
        batches = _length_sorted_batches(token_ids, batch_size)
        with ThreadPoolExecutor(max_workers=max(1, parallel_batches)) as pool:
            for rows, batch_probabilities, batch_attention in pool.map(run, batches):
                probabilities[rows] = batch_probabilities[:len(rows)]
                attention[rows, :batch_attention.shape[1]] = batch_attention[:len(rows)]
        return {
            "labels": probabilities.argmax(axis=-1),
            "probabilities": probabilities,
            "attention": attention,
        }

    def _compiled_predict(self, jit_compile, lookup_table):
        cache = self._predict_functions.cache
        if (jit_compile, lookup_table) not in cache:
            def predict(token_ids):
                """int [batch, time] -> (probabilities, attention), inference only."""
                mask = ops.not_equal(token_ids, PAD_ID)
                outputs = self.encoder.infer(token_ids, self.source_embedding, lookup_table)
                result = self._head(outputs, mask, training=False)
                return result["probabilities"], result["attention"]

            cache[jit_compile, lookup_table] = tf.function(
                predict, jit_compile=jit_compile,
                input_signature=[tf.TensorSpec([None, None], tf.int32)])
        return cache[jit_compile, lookup_table]


def _length_sorted_batches(token_ids, batch_size):
    """Yields `(rows, batch)`: row indices and their ids, grouped by length.

    A batch is cut to its longest sequence rounded up to a multiple of 16 and
    padded to a power-of-two number of rows, so that few shapes occur.
    """
    time = token_ids.shape[1]
    lengths = (token_ids != PAD_ID).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = min(time, max(16, -(-int(lengths[rows].max()) // 16) * 16))
        height = min(batch_size, 2 ** int(np.ceil(np.log2(len(rows)))))
        batch = np.full((height, width), PAD_ID, np.int32)
        batch[:len(rows)] = token_ids[rows, :width]
        yield rows, batch
