"""The two benchmark scripts still run and write what they promise (small settings; the real runs are by hand).

They measure, they do not assert: these tests only check that a clean checkout can run them,
that the files they write have the promised columns, and that the diffusers comparison finds
the two libraries in agreement (the numbers themselves live in benchmarks/README.md).
"""

import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The scripts switch to the solutions when they start a fresh Python; inside pytest the
# package may already be loaded with the stubs, so switch it here for the test's length.
pytestmark = pytest.mark.usefixtures("one_thread", "package_uses_solutions")


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_samplers_benchmark_writes_its_table_and_plot(tmp_path, capsys):
    samplers = load_script("samplers")
    assert samplers.main(["--data", "moons", "--samplers", "ddim", "dpm", "--nfe", "5", "10",
                          "--n", "200", "--seeds", "1", "--out", str(tmp_path)]) == 0
    rows = read_rows(tmp_path / "samplers.csv")
    assert {(r["sampler"], r["nfe"]) for r in rows} == {("ddim", "5"), ("ddim", "10"), ("dpm", "5"), ("dpm", "10")}
    for row in rows:
        assert float(row["ratio"]) > 0 and float(row["seconds"]) > 0
    by_nfe = {r["nfe"]: float(r["ratio"]) for r in rows if r["sampler"] == "dpm"}
    assert by_nfe["10"] < by_nfe["5"], "DPM-Solver++ should improve from 5 to 10 network evaluations"
    assert (tmp_path / "samplers.png").stat().st_size > 0
    assert "moons" in capsys.readouterr().out


def test_vs_diffusers_benchmark_agrees_and_writes_its_table(tmp_path, capsys):
    pytest.importorskip("diffusers", reason="the diffusers benchmark needs the dev extra")
    vs_diffusers = load_script("vs_diffusers")
    out = tmp_path / "vs.csv"
    assert vs_diffusers.main(["--data", "moons", "--samplers", "ddim", "euler", "dpm",
                              "--repeats", "1", "--out", str(out)]) == 0
    rows = read_rows(out)
    assert [r["sampler"] for r in rows] == ["ddim", "euler", "dpm"]
    for row in rows:
        # Same algorithm, same x_T, same float32 ᾱ: only float32 rounding may differ.
        assert float(row["max_diff"]) < 1e-4 * max(float(row["max_abs_output"]), 1.0), row
        assert float(row["time_ratio"]) > 0
    assert "largest difference" in capsys.readouterr().out


def test_digits_benchmark_measures_confidence_fd_and_memorisation(tmp_path, capsys):
    import json

    import torch

    from mini_diffusion.toolkit import data

    digits = load_script("digits")
    real = data.digits()
    # Copies of training digits are caught as memorised: distance 0, all near-copies.
    copies = digits.memorisation(real[:100])
    assert copies["samples_median"] == 0 and copies["samples_near_copies"] == 1.0
    assert abs(copies["real_near_copies"] - 0.01) < 0.005  # the threshold is the real 1st percentile
    # Fresh noise in the data range lies farther from every training digit than real digits do.
    noise = digits.memorisation(torch.rand(100, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert noise["median_ratio"] > 1.5 and noise["samples_near_copies"] == 0
    d = digits.nearest_distances(real[:5], real, exclude_self=False)
    assert torch.equal(d, torch.zeros(5, dtype=torch.float64))
    assert digits.confidence(real)["mean_confidence"] > 0.99
    out = tmp_path / "digits.json"
    assert digits.main(["--n", "16", "--seeds", "1", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["ddim50"]
    assert row["n"] == 16 and 0.1 < row["mean_confidence"] <= 1 and row["fd_ratio"] > 0
    assert set(row["goals_met"]) == {"mean_confidence_ge_0.97", "fd_ratio_le_1.0", "no_memorisation"}
    assert "mean confidence" in capsys.readouterr().out


def test_samplers_benchmark_runs_the_multistep_solvers_with_the_shipped_optimised_stops(tmp_path, capsys):
    samplers = load_script("samplers")
    assert samplers.main(["--data", "moons", "--few", "--samplers", "dpm3m_quadratic", "unipc2_optimised",
                          "unipc3_sigmamin", "--nfe", "5", "--n", "200", "--seeds", "1", "--out", str(tmp_path)]) == 0
    rows = read_rows(tmp_path / "samplers.csv")
    assert {(r["sampler"], r["nfe"]) for r in rows} == {
        ("dpm3m_quadratic", "5"), ("unipc2_optimised", "5"), ("unipc3_sigmamin", "5")}
    assert all(float(r["ratio"]) > 0 for r in rows)
    assert "UniPC-2 (bh2), optimised" in capsys.readouterr().out
