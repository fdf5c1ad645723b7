"""Interleaved measurement: every function once per round, in order, results kept per round."""
from dynnet_d2.utils.measure import interleaved_median_s, interleaved_rounds


def test_interleaved_rounds_call_each_function_once_per_round_in_order():
    calls = []

    def fn(name):
        def call():
            calls.append(name)
            return len(calls)
        return call

    results = interleaved_rounds({"a": fn("a"), "b": fn("b")}, rounds=3)
    assert calls == ["a", "b"] * 3
    assert results == {"a": [1, 3, 5], "b": [2, 4, 6]}


def test_interleaved_median_s_times_every_call():
    calls = []
    runs = interleaved_median_s({"a": lambda: calls.append("a"),
                                 "b": lambda: calls.append("b")}, rounds=3)
    assert calls == ["a", "b"] * 3
    assert all(len(r["runs_s"]) == 3 and r["median_s"] in r["runs_s"]
               and all(t >= 0 for t in r["runs_s"]) for r in runs.values())
