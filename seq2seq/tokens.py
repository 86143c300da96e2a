"""Special token ids and pieces, shared by every module of the kit.

Id 0 is padding and means "nothing here": every loss, metric and mask treats
it as absent, so sequences are padded with 0 and never with the end token.
"""

PAD_ID = 0
UNK_ID = 1
START_ID = 2
END_ID = 3

PAD_PIECE = "<pad>"
UNK_PIECE = "<unk>"
START_PIECE = "<s>"
END_PIECE = "</s>"

SPECIAL_IDS = (PAD_ID, UNK_ID, START_ID, END_ID)
