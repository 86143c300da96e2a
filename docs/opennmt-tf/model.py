import tensorflow as tf
import tensorflow_addons as tfa
import opennmt


class LSTMLuong(opennmt.models.SequenceToSequence):
    def __init__(self):
        super().__init__(
            source_inputter=opennmt.inputters.WordEmbedder(embedding_size=256),
            target_inputter=opennmt.inputters.WordEmbedder(embedding_size=256),
            encoder=opennmt.encoders.RNNEncoder(num_layers=1, num_units=256, dropout=0.0,
                                                cell_class=tf.keras.layers.LSTMCell),
            decoder=opennmt.decoders.AttentionalRNNDecoder(
                num_layers=1, num_units=256, dropout=0.0,
                attention_mechanism_class=tfa.seq2seq.LuongAttention,
                cell_class=tf.keras.layers.LSTMCell, bridge_class=opennmt.layers.CopyBridge),
        )


model = LSTMLuong
