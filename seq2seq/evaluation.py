"""Corpus-level translation metrics on detokenized strings.

BLEU and chrF come from sacreBLEU with its default settings (BLEU: 13a
tokenization, exponential smoothing; chrF: character 6-grams, beta 2), so the
numbers are comparable with published sacreBLEU scores. Both are on sacreBLEU's
0-100 scale; `exact_match` is a fraction in [0, 1]. Corpus BLEU is 0 when no
hypothesis has four tokens (no 4-grams at all), which very short test sets hit.
"""

from sacrebleu.metrics import BLEU, CHRF


def evaluate_translations(hypotheses: list[str], references: list[str]) -> dict:
    """Scores detokenized hypotheses against one reference each.

    Returns `{"bleu", "chrf", "exact_match", "sentences"}`: corpus BLEU and chrF
    (0-100), the fraction of hypotheses equal to their reference after
    stripping surrounding whitespace, and the number of sentence pairs.
    """
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            "Expected one hypothesis per reference. Received: "
            f"{len(hypotheses)} hypotheses and {len(references)} references."
        )
    if not hypotheses:
        raise ValueError("Expected at least one sentence pair. Received: 0 hypotheses.")
    matches = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references))
    return {
        "bleu": BLEU().corpus_score(hypotheses, [references]).score,
        "chrf": CHRF().corpus_score(hypotheses, [references]).score,
        "exact_match": matches / len(hypotheses),
        "sentences": len(hypotheses),
    }
