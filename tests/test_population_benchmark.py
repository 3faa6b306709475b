"""``benchmarks/population.py``: the recurrent-product figures that explain where a population
gains on a CPU are computed from the timings they claim."""

from __future__ import annotations

import pytest
from _benchmarks import load_benchmark


def test_the_recurrent_product_figures_agree_with_each_other() -> None:
    bench = load_benchmark("population")
    row = bench.recurrent_product(4, 2, 32, rounds=2, device="cpu", repeats=3)
    assert (row["members"], row["batch"], row["n_rec"]) == (4, 2, 32)
    assert row["weights_mib"] == pytest.approx(4 * 32 * 32 * 4 / 2**20)
    assert min(row["alone_gflops"], row["population_gflops"], row["shared_gflops"]) > 0
    # the ratio is population speed over one-by-one speed: the GFLOP/s say the same
    assert row["ratio"] == pytest.approx(row["population_gflops"] / row["alone_gflops"])
