"""Writes the kit's gettext en->fr training and validation split as SentencePiece pieces for OpenNMT-tf.

    python docs/opennmt-tf/prep.py OUT_DIR     # in the kit's virtualenv

OUT_DIR gets spm.model (2,000 pieces, trained as `seq2seq bench train --vocab-size 2000` trains its
own), vocab.txt (the pieces without the kit's 4 special ones; OpenNMT-tf adds its own) and
{train,valid}.{src,tgt}: sources cut to 23 pieces and targets to 31, so with OpenNMT-tf's end
token (and start token on the target) they fill the kit's 24 / 32 positions.
"""

import sys

import sentencepiece

from seq2seq.bench.train import TOKENIZER_SENTENCES, gettext_split
from seq2seq.tokenizer import train_sentencepiece_from_sentences

SPECIAL_PIECES = 4  # pad, unk, start, end: seq2seq.tokens

out = sys.argv[1]
split = gettext_split("fr", "/usr/share/locale")
model = str(train_sentencepiece_from_sentences([p.source for p in split.train] + [p.target for p in split.train],
                                               out, vocab_size=2000, max_sentences=TOKENIZER_SENTENCES))
processor = sentencepiece.SentencePieceProcessor(model_file=model)
with open(f"{out}/vocab.txt", "w") as vocab:
    vocab.writelines(processor.id_to_piece(i) + "\n" for i in range(SPECIAL_PIECES, processor.get_piece_size()))
for name, pairs in (("train", split.train), ("valid", split.valid)):
    with open(f"{out}/{name}.src", "w") as sources, open(f"{out}/{name}.tgt", "w") as targets:
        for pair in pairs:
            sources.write(" ".join(processor.encode(pair.source, out_type=str)[:23]) + "\n")
            targets.write(" ".join(processor.encode(pair.target, out_type=str)[:31]) + "\n")
print(f"{len(split.train)} training and {len(split.valid)} validation pairs in {out}")
