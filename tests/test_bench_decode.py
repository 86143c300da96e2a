"""`seq2seq bench decode`: how the report puts the per-sentence tutorial baseline beside the kit."""

from seq2seq.bench import decode as bench_decode


def test_greedy_speedup_compares_seconds_per_sentence_with_the_tutorial_baseline():
    report = {"greedy_speedup": 12.0, "sentences": 200, "seconds": {"greedy": 0.5}}
    greedy_by_text = {"a": (7, 3), "b": (9, 3), "c": (5, 5, 3)}
    result = bench_decode._with_tutorial(report, greedy_by_text, ["a", "b", "c", "a"],
                                         [(7, 3), (9, 9, 3), (5, 5, 3), (7, 3)], tutorial_seconds=8.0)
    # kit: 0.5 s / 200 sentences; tutorial: 8 s / 4 sentences.
    assert result["greedy_speedup"] == round((8.0 / 4) / (0.5 / 200), 1)
    assert result["greedy_speedup_vs_compiled_prefix"] == 12.0
    assert result["tutorial_sentences_per_s"] == 0.5
    assert result["tutorial_agreement"] == 0.75  # "b" differs
    assert list(result)[:2] == ["greedy_speedup", "greedy_speedup_vs_compiled_prefix"]


def test_without_model_it_decodes_with_the_quick_start_run_when_there_is_one(tmp_path, monkeypatch):
    import argparse

    monkeypatch.chdir(tmp_path)

    def chosen(*argv):
        parser = argparse.ArgumentParser()
        bench_decode.add_arguments(parser)
        return bench_decode.chosen_model(parser.parse_args(list(argv)))

    assert chosen() is None  # no run: a fresh translator
    (tmp_path / bench_decode.DEFAULT_RUN).mkdir(parents=True)
    (tmp_path / bench_decode.DEFAULT_RUN / "model.keras").write_bytes(b"")
    assert chosen() == bench_decode.DEFAULT_RUN
    assert chosen("--fresh") is None
    assert chosen("--model", "elsewhere") == "elsewhere"


def test_n_best_and_sampling_decoders_are_timed_against_beam_four():
    import numpy as np

    from decoding_cases import RandomTranslator
    from seq2seq.decoding import Sampling

    setup = {"translator": RandomTranslator(), "max_length": 6, "length_penalty": 0.6}
    sources = np.random.default_rng(0).integers(4, 14, size=[5, 4]).astype(np.int32)
    batches = [sources, sources[:2]]
    hypotheses, seconds = bench_decode._measure(batches, {
        "beam4": (bench_decode._kit_decoder(setup, beam_size=4), 1),
        "nbest4": (bench_decode._kit_decoder(setup, beam_size=4, n_best=4), 1),
        "sample": (bench_decode._kit_decoder(setup, beam_size=1, sampling=Sampling(seed=3)), 2),
    })
    assert hypotheses["nbest4"] == hypotheses["beam4"]  # the best of the n-best list is beam search's answer
    again = bench_decode._kit_decoder(setup, beam_size=1, sampling=Sampling(seed=3))
    assert bench_decode._hypotheses([again(b).numpy() for b in batches]) == hypotheses["sample"]  # seeded
    seconds.update(greedy=1.0, baseline=4.0)
    hypotheses.update(greedy=hypotheses["beam4"], baseline=hypotheses["beam4"])
    setup.update(batch_size=5, max_source_len=4, description="random")
    report = bench_decode._report(setup, hypotheses, seconds, kit_repeats=1)
    assert report["nbest4_over_beam4_time"] == round(seconds["nbest4"] / seconds["beam4"], 2)
    assert report["sample_sentences_per_s"] == round(7 / seconds["sample"], 2)
    assert report["nbest4_best_equals_beam4"] == 1.0
