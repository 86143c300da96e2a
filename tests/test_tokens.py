from seq2seq import tokens


def test_reserved_ids_are_the_documented_ones():
    assert (tokens.PAD_ID, tokens.UNK_ID, tokens.START_ID, tokens.END_ID) == (0, 1, 2, 3)


def test_reserved_ids_are_distinct():
    assert len(set(tokens.SPECIAL_IDS)) == len(tokens.SPECIAL_IDS)
