"""seq2seq-kit: LSTM encoder-decoders and attention classifiers for Keras 3.

Importing the package is cheap: TensorFlow loads only when a module that needs
it is imported (`seq2seq.losses`, `seq2seq.models`, ...).
"""

__version__ = "0.1.0"
