"""The learning-rate schedules the training driver (`seq2seq.training`) builds, by name.

Only the names and constants live here, in a module that imports nothing, so a
run config can check `train.lr_schedule` without starting Keras; the driver
builds the schedule itself (`seq2seq.training.BudgetedCosineDecay`).
"""

# "constant": Adam's learning rate throughout. "cosine": from the learning rate down to
# COSINE_FLOOR times it along half a cosine over all epochs, counted in optimizer steps.
LR_SCHEDULES = ("constant", "cosine")
# The cosine schedule's last learning rate, as a fraction of the first.
COSINE_FLOOR = 0.02
