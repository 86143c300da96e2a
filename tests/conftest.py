"""Test-wide settings: quiet TensorFlow and pin the Keras backend before any import."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
