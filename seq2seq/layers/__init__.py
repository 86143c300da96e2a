"""Custom Keras layers of the kit (attention)."""
