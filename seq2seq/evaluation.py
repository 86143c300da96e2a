"""Corpus-level translation metrics on detokenized strings.

BLEU and chrF come from sacreBLEU with its default settings (BLEU: 13a
tokenization, exponential smoothing; chrF: character 6-grams, beta 2), so the
numbers are comparable with published sacreBLEU scores. Both are on sacreBLEU's
0-100 scale; `exact_match` is a fraction in [0, 1]. Corpus BLEU is 0 when no
hypothesis has four tokens (no 4-grams at all), which very short test sets hit.
Given the sources, `placeholder_rate` is the fraction of the sentences with
placeholders whose translation holds exactly its source's placeholders
(`seq2seq.placeholders.placeholder_rate`).
"""

from sacrebleu.metrics import BLEU, CHRF

from seq2seq.placeholders import placeholder_rate


def evaluate_translations(hypotheses: list[str], references: list[str], sources: list[str] | None = None) -> dict:
    """Scores detokenized hypotheses against one reference each.

    Returns `{"bleu", "chrf", "exact_match", "sentences"}`: corpus BLEU and chrF
    (0-100), the fraction of hypotheses equal to their reference after
    stripping surrounding whitespace, and the number of sentence pairs. With
    `sources` (one per hypothesis), also `"placeholder_rate"` (None when no
    source has a placeholder) and `"placeholder_sentences"`, the number of
    sources with placeholders.
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
    metrics = {
        "bleu": BLEU().corpus_score(hypotheses, [references]).score,
        "chrf": CHRF().corpus_score(hypotheses, [references]).score,
        "exact_match": matches / len(hypotheses),
        "sentences": len(hypotheses),
    }
    if sources is not None:
        metrics["placeholder_rate"], metrics["placeholder_sentences"] = placeholder_rate(list(sources), hypotheses)
    return metrics
