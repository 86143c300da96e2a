"""The kit's models: the LSTM translator and the attention classifier."""
