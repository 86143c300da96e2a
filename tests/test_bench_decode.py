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
