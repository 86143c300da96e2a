"""`seq2seq translate --n-best/--with-scores/--with-alignments` and `seq2seq score` on a tiny run.

The run is untrained (random weights, made peaked so that beam search finishes
its hypotheses); what is checked is that the commands agree with each other and
with the library: `score` gives back the log-probability beam search reported
for each hypothesis it wrote.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seq2seq.cli.main import main
from seq2seq.data.generated import generate_pairs

REPO = Path(__file__).resolve().parent.parent
GENERATED_MODEL = REPO / "tokenizers" / "generated.model"
SOURCES = [pair.source for pair in generate_pairs("copy", 8, seed=1)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with an untrained tiny Translator, laid out as `load_run` reads it."""
    from seq2seq.runs import config_io
    from seq2seq.data.batching import BatchingConfig
    from seq2seq.runs.config import DecodeConfig, ModelConfig, RunConfig
    from seq2seq.tokenizer import SentencePieceTokenizer
    from seq2seq.tokens import END_ID, START_ID
    from seq2seq.runs.translation import build_translator

    directory = tmp_path_factory.mktemp("decode") / "run"
    directory.mkdir()
    config = RunConfig(model=ModelConfig(embed_dim=8, units=8),
                       batching=BatchingConfig(max_source_len=16, max_target_len=16),
                       decode=DecodeConfig(beam_size=3, max_length=10, batch_size=4, first_word_casing=False))
    (directory / "config.toml").write_text(config_io.to_toml(config))
    shutil.copyfile(GENERATED_MODEL, directory / "tokenizer.model")
    translator = build_translator(config, SentencePieceTokenizer.from_file(GENERATED_MODEL).vocab_size)
    translator((np.array([[5, 6, END_ID]]), np.array([[START_ID, 7, 8]])))  # creates the weights
    # Weights of unit scale: outputs that differ by source, some of them ending before max_length.
    rng = np.random.default_rng(0)
    translator.set_weights([rng.normal(size=w.shape).astype("float32") for w in translator.get_weights()])
    kernel, bias = translator.output_projection.get_weights()
    bias[END_ID] += 4.0  # enough for a dozen of the 24 hypotheses to end within max_length
    translator.output_projection.set_weights([kernel, bias])
    translator.save(directory / "model.keras")
    return directory


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def translate_json(run_dir, tmp_path, capsys, *flags, lines=SOURCES):
    (tmp_path / "in.txt").write_text("".join(line + "\n" for line in lines))
    code, out, err = run(capsys, "translate", "--model", str(run_dir), "--input", str(tmp_path / "in.txt"), *flags)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_n_best_with_scores_writes_one_json_line_per_input(run_dir, tmp_path, capsys):
    results = translate_json(run_dir, tmp_path, capsys, "--n-best", "3", "--with-scores")
    assert [result["source"] for result in results] == SOURCES
    code, plain, _ = run(capsys, "translate", "--model", str(run_dir), "--input", str(tmp_path / "in.txt"))
    assert code == 0
    assert [result["hypotheses"][0]["text"] for result in results] == plain.splitlines()
    for result in results:
        hypotheses = result["hypotheses"]
        assert 1 <= len(hypotheses) <= 3 and set(hypotheses[0]) == {"text", "log_prob", "score"}
        assert len({h["text"] for h in hypotheses}) == len(hypotheses) or len(hypotheses) == 1
        assert all(h["log_prob"] <= 0 and h["score"] <= 0 for h in hypotheses)
    assert sum(len(result["hypotheses"]) for result in results) > len(results)  # several per source


def test_alignments_hard_and_soft_describe_the_same_attention(run_dir, tmp_path, capsys):
    from seq2seq.inference import source_ids
    from seq2seq.runs.translation import load_run

    hard = translate_json(run_dir, tmp_path, capsys, "--with-alignments", "hard")
    soft = translate_json(run_dir, tmp_path, capsys, "--n-best", "1", "--with-alignments", "soft")
    tokenizer = load_run(run_dir).tokenizer
    read = np.count_nonzero(source_ids(tokenizer, SOURCES, 32).numpy(), axis=1)  # pieces + END
    for h, s, source_length in zip(hard, soft, read):
        hypothesis = s["hypotheses"][0]
        weights = np.array(hypothesis["alignment"])
        assert set(h["hypotheses"][0]) == {"text", "alignment"}
        assert weights.shape[1] == source_length  # [output pieces + END, source pieces + END]
        # one row per output piece (+ END when it finished), at most max_length (10)
        assert weights.shape[0] == len(h["hypotheses"][0]["alignment"]) and 1 <= weights.shape[0] <= 10
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-3)
        picked = weights[np.arange(len(weights)), h["hypotheses"][0]["alignment"]]
        np.testing.assert_allclose(picked, weights.max(axis=1), atol=1e-4)  # soft is rounded to 4 digits


def test_n_best_beyond_the_beam_is_a_clear_error(run_dir, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("yoke bas\n")
    code, _, err = run(capsys, "translate", "--model", str(run_dir), "--input", str(tmp_path / "in.txt"),
                       "--n-best", "4")
    assert code == 2 and "--n-best 4" in err and "--beam 4" in err


def test_score_gives_back_beam_searchs_log_prob_of_its_own_hypotheses(run_dir, tmp_path, capsys):
    from seq2seq.decoding import translate_ids
    from seq2seq.inference import source_ids
    from seq2seq.tokens import END_ID
    from seq2seq.runs.translation import decode_options, load_run

    run_ = load_run(run_dir)
    tokenizer, options = run_.tokenizer, decode_options(run_)
    result = translate_ids(run_.translator, source_ids(tokenizer, SOURCES, options["max_source_len"]),
                           beam_size=3, max_length=options["max_length"],
                           length_penalty=options["length_penalty"], n_best=3)
    pairs = []  # (source, hypothesis text, beam search's log-prob) of the finished hypotheses
    for row, source in enumerate(SOURCES):
        for k in range(3):
            pieces = result.token_ids.numpy()[row, k, : result.lengths.numpy()[row, k]]
            text = tokenizer.detokenize([pieces[:-1]]).numpy()[0].decode()
            # Only a text that reads back as the same pieces has the same log-prob.
            if pieces[-1] == END_ID and tokenizer.tokenize([text]).numpy()[0].tolist() == pieces[:-1].tolist():
                pairs.append((source, text, float(result.log_probs[row, k])))
    assert len(pairs) >= 4 and len({text for _, text, _ in pairs}) >= 3, pairs
    (tmp_path / "pairs.tsv").write_text("".join(f"{source}\t{text}\n" for source, text, _ in pairs))
    code, out, err = run(capsys, "score", "--model", str(run_dir), "--data", str(tmp_path / "pairs.tsv"),
                         "--per-token", "--batch-size", "3")
    assert code == 0, err
    scored = [json.loads(line) for line in out.splitlines()]
    assert [(s["source"], s["target"]) for s in scored] == [(source, text) for source, text, _ in pairs]
    np.testing.assert_allclose([s["log_prob"] for s in scored], [p[2] for p in pairs], atol=1e-4)
    for s in scored:
        assert s["tokens"] == len(tokenizer.tokenize([s["target"]]).numpy()[0]) + 1
        assert len(s["token_log_probs"]) == s["tokens"]
        assert abs(sum(s["token_log_probs"]) - s["log_prob"]) < 1e-4
    # translate --with-scores reports the same log-probs for the same hypotheses.
    reported = {(r["source"], h["text"]): h["log_prob"]
                for r in translate_json(run_dir, tmp_path, capsys, "--n-best", "3", "--with-scores")
                for h in r["hypotheses"]}
    np.testing.assert_allclose([reported[source, text] for source, text, _ in pairs], [p[2] for p in pairs],
                               atol=1e-5)


def test_score_writes_a_null_line_for_an_unreadable_pair(run_dir, tmp_path, capsys):
    (tmp_path / "pairs.tsv").write_bytes(b"yoke bas\tyoke\n\nno tab here\nbas\tbas yoke\n")
    code, out, err = run(capsys, "score", "--model", str(run_dir), "--data", str(tmp_path / "pairs.tsv"))
    assert code == 0
    scored = [json.loads(line) for line in out.splitlines()]
    assert [s["target"] for s in scored] == ["yoke", None, "bas yoke"]
    assert scored[1]["log_prob"] is None and scored[0]["log_prob"] < 0
    assert "line 3" in err



def translate_plain(run_dir, tmp_path, capsys, *flags):
    (tmp_path / "in.txt").write_text("".join(line + "\n" for line in SOURCES))
    code, out, err = run(capsys, "translate", "--model", str(run_dir), "--input", str(tmp_path / "in.txt"), *flags)
    assert code == 0, err
    assert len(out.splitlines()) == len(SOURCES)
    return out.splitlines()


def test_sample_repeats_with_its_seed_and_top_k_1_is_greedy(run_dir, tmp_path, capsys):
    sampled = translate_plain(run_dir, tmp_path, capsys, "--sample", "--temperature", "2", "--seed", "5")
    assert translate_plain(run_dir, tmp_path, capsys, "--sample", "--temperature", "2", "--seed", "5") == sampled
    assert translate_plain(run_dir, tmp_path, capsys, "--sample", "--temperature", "2", "--seed", "6") != sampled
    greedy = translate_plain(run_dir, tmp_path, capsys, "--beam", "1")
    assert translate_plain(run_dir, tmp_path, capsys, "--sample", "--top-k", "1", "--temperature", "3") == greedy
    [scored] = translate_json(run_dir, tmp_path, capsys, "--sample", "--seed", "5", "--with-scores",
                              lines=SOURCES[:1])
    assert len(scored["hypotheses"]) == 1 and scored["hypotheses"][0]["log_prob"] < 0


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "2"], "--temperature only apply to sampling; add --sample"),
    (["--sample", "--beam", "3"], "leave out --beam 3"),
    (["--sample", "--top-p", "0"], "top_p=0.0"),
])
def test_bad_sampling_flags_are_clear_errors(run_dir, tmp_path, capsys, flags, message):
    (tmp_path / "in.txt").write_text("yoke bas\n")
    code, _, err = run(capsys, "translate", "--model", str(run_dir), "--input", str(tmp_path / "in.txt"), *flags)
    assert code == 2 and message in err, err
