"""citystat.core.kept.KeptValues: the one bounded cache of fitted models, chart specs and tables."""

from __future__ import annotations

import threading
import time

import pytest

from citystat.core.kept import KeptValues


def test_a_value_is_computed_once_and_the_least_recently_used_goes_first():
    kept = KeptValues(limit=2)
    calls = []

    def compute(name):
        return lambda: calls.append(name) or name.upper()

    assert kept.get("a", compute("a")) == "A"
    assert kept.get("a", compute("a")) == "A"
    kept.get("b", compute("b"))
    kept.get("a", compute("a"))          # a is now the most recently used
    kept.get("c", compute("c"))          # so b is dropped, not a
    kept.get("a", compute("a"))
    kept.get("b", compute("b"))
    assert calls == ["a", "b", "c", "b"]
    assert len(kept) == 2


def test_callers_of_a_key_being_computed_wait_for_it_instead_of_computing_again():
    kept = KeptValues(limit=4)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return 42

    results = []
    threads = [threading.Thread(target=lambda: results.append(kept.get("k", slow))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [42] * 4 and calls == [1]


def test_a_failed_computation_is_not_kept_and_runs_again_next_time():
    kept = KeptValues(limit=4)

    def fail():
        raise ValueError("no")

    with pytest.raises(ValueError):
        kept.get("k", fail)
    assert kept.get("k", lambda: 7) == 7
    kept.clear()
    assert len(kept) == 0
