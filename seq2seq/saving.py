"""Loading `.keras` files that hold the kit's models, layers, losses and metrics.

Keras finds a custom class only if the module that registers it has been
imported; `load_model` imports all of the kit's before loading.
"""

import keras


def load_model(path, *, compile: bool = True):
    """`keras.saving.load_model` with every seq2seq class registered.

    Args:
        path: a `.keras` file saved from a kit model (or any model using the
            kit's losses and metrics).
        compile: restore the training configuration (loss, metrics) too.
    """
    import seq2seq.layers.attention  # noqa: F401
    import seq2seq.layers.encoder  # noqa: F401
    import seq2seq.losses  # noqa: F401
    import seq2seq.metrics  # noqa: F401
    import seq2seq.models.classifier  # noqa: F401
    import seq2seq.models.translator  # noqa: F401

    return keras.saving.load_model(path, compile=compile)
