"""The contract between the kit's models and the one shared train step.

Both `Translator` and `Classifier` subclass `SaliencyModel`. The train step
(`train_step` / `test_step` here, the penalty maths in `seq2seq.saliency`) is
written once and sees a model only through these hooks:

- `split_inputs(x) -> (inputs, annotation | None)`: separates the model's own
  inputs from the optional per-token annotation Z ([batch, src_time], 1 = may
  rely on, 0 = should ignore) that the data pipeline carries beside them.
- `embed_source(inputs) -> [batch, src_time, embed_dim]`: the float tensor the
  saliency is taken with respect to (the embedded source tokens).
- `forward(inputs, source_embedding, training) -> dict`: the rest of the
  forward pass from that embedding; holds at least `"logits"`
  ([batch, classes] or [batch, tgt_time, vocab]) and `"attention"`.

`call(inputs)` is `forward(inputs, embed_source(inputs))`, so the saliency
step and plain inference run the same code.
"""
