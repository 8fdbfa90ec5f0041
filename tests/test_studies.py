"""Studies: the statistics against closed forms and t-tables, and a tiny study end to end."""

import json
import math

import numpy as np
import pytest

from jaxnet.errors import ConfigError
from jaxnet.studies import report, spec, stats
from jaxnet.studies.command import main
from jaxnet.studies.run import run_study
from jaxnet.studies.stats import Summary

# Two-sided 95% Student-t critical values from a printed t-table (3 decimals).
T_TABLE_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 7: 2.365, 9: 2.262, 29: 2.045}
T_TABLE_99 = {1: 63.657, 4: 4.604, 9: 3.250}


@pytest.mark.parametrize("df", sorted(T_TABLE_95))
def test_t_critical_matches_a_t_table(df):
    assert stats.t_critical(df, 0.95) == pytest.approx(T_TABLE_95[df], abs=6e-4)
    if df in T_TABLE_99:
        assert stats.t_critical(df, 0.99) == pytest.approx(T_TABLE_99[df], abs=6e-4)


def test_t_probability_closed_forms():
    # df = 1 is the Cauchy distribution: P(|T| <= t) = 2 atan(t) / pi.
    # df = 2 has P(|T| <= t) = t / sqrt(2 + t^2).
    for t in (0.1, 0.5, 1.0, 2.5, 10.0):
        assert stats.t_two_sided_probability(t, 1) == pytest.approx(
            2 * math.atan(t) / math.pi, rel=1e-12
        )
        assert stats.t_two_sided_probability(t, 2) == pytest.approx(
            t / math.sqrt(2 + t * t), rel=1e-12
        )
    # large df approaches the normal distribution: P(|Z| <= 1.959964) = 0.95
    assert stats.t_two_sided_probability(1.959964, 4000) == pytest.approx(0.95, abs=2e-4)


@pytest.mark.parametrize(
    "values",
    [
        [0.91, 0.93, 0.92],
        [1.0, 2.0, 4.0, 8.0, 16.0],
        [0.5, 0.52, 0.49, 0.51, 0.5, 0.53, 0.47, 0.55],
    ],
)
def test_summarize_mean_standard_error_and_interval(values):
    x = np.asarray(values, np.float64)
    n = len(x)
    mean = x.sum() / n
    se = math.sqrt(((x - mean) ** 2).sum() / (n - 1)) / math.sqrt(n)
    half = T_TABLE_95[n - 1] * se
    summary = stats.summarize(values)
    assert summary.n == n
    assert summary.mean == pytest.approx(mean, rel=1e-12)
    assert summary.standard_error == pytest.approx(se, rel=1e-12)
    assert stats.standard_error(values) == pytest.approx(se, rel=1e-12)
    # the table has 3 decimals: compare the interval to within that rounding
    assert summary.low == pytest.approx(mean - half, abs=6e-4 * se + 1e-12)
    assert summary.high == pytest.approx(mean + half, abs=6e-4 * se + 1e-12)


def test_summarize_one_value_has_an_unbounded_interval():
    summary = stats.summarize([0.7])
    assert summary.mean == 0.7 and math.isnan(summary.standard_error)
    assert summary.low == -math.inf and summary.high == math.inf


def _summary(low, high):
    return Summary((low + high) / 2, (high - low) / 4, low, high, 8)


def test_ranking_is_competition_ranking_when_ties_form_groups():
    cells = [_summary(0.95, 0.97), _summary(0.90, 0.93), _summary(0.91, 0.94), _summary(0.80, 0.85)]
    assert stats.rank_with_ties(cells, "max") == [1, 2, 2, 4]
    # for a loss, smaller is better: the order reverses
    assert stats.rank_with_ties(cells, "min") == [4, 2, 2, 1]


def test_ranking_with_non_transitive_overlap_and_diverged_cells():
    a, b, c = _summary(0.90, 0.96), _summary(0.88, 0.91), _summary(0.80, 0.89)
    # a overlaps b, b overlaps c, a is clearly above c
    assert stats.rank_with_ties([a, b, c], "max") == [1, 1, 2]
    diverged = Summary(math.nan, math.nan, math.nan, math.nan, 8)
    assert stats.rank_with_ties([diverged, a, diverged], "max") == [2, 1, 2]
    assert stats.rank_with_ties([diverged, a], "min") == [2, 1]


def test_cells_group_into_programs_by_everything_but_the_learning_rate():
    study = spec.Study(
        "s",
        cells=tuple(spec.grid(optimizer=["sgd", "adam"], learning_rate=[0.1, 0.01]))
        + ({"activation": "tanh"}, {"batch_size": 64}),
    )
    settings = spec.resolved_settings(study)
    keys = [spec.program_key(s) for s in settings]
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]
    assert len(set(keys)) == 4
    names = spec.cell_names(study, settings)
    assert names[0] == "relu sgd lr=0.1 batch=32" and names[4] == "tanh adam lr=0.001 batch=32"


def test_bad_declarations_raise_config_errors():
    with pytest.raises(ConfigError, match="unknown cell setting"):
        spec.resolved_settings(spec.Study("s", cells=({"activaton": "relu"},)))
    with pytest.raises(ConfigError, match="same settings"):
        spec.resolved_settings(spec.Study("s", cells=({}, {"learning_rate": 1e-3})))
    with pytest.raises(ConfigError, match="unknown study"):
        run_study("no_such_study")
    assert main(["no_such_study", "--out", "unused"]) == 2


TINY = spec.Study(
    "tiny",
    cells=({"learning_rate": 1e-3}, {"learning_rate": 3e-2}),
    dataset="wine",
    base={"hidden": (16,), "batch_size": 16},
    epochs=2,
    seeds=(0, 1),
    n_train=64,
)


def test_tiny_study_end_to_end_reproducible_and_seed_independent(tmp_path):
    result = run_study(TINY, out=tmp_path, verbose=0)
    saved = json.loads((tmp_path / "study_tiny.json").read_text())
    assert (tmp_path / "study_tiny.png").stat().st_size > 0
    markdown = (tmp_path / "study_tiny.md").read_text()
    assert "lr=0.001" in markdown and "lr=0.03" in markdown

    assert [c["name"] for c in saved["cells"]] == ["lr=0.001", "lr=0.03"]
    assert saved["programs"] == 1 and saved["data"]["n_train"] == 64
    for cell in saved["cells"]:
        assert cell["seeds"] == [0, 1]
        assert cell["steps"] == 2 * (64 // 16)
        for name in ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_loss"):
            assert len(cell["values"][name]) == 2
            values = np.asarray(cell["values"][name])
            s = cell["summary"][name]
            assert s["mean"] == pytest.approx(values.mean())
            assert s["standard_error"] == pytest.approx(values.std(ddof=1) / math.sqrt(2))
            assert s["high"] - s["mean"] == pytest.approx(
                T_TABLE_95[1] * s["standard_error"], rel=1e-4
            )
        assert np.asarray(cell["history"]["val_loss"]).shape == (2, 2)  # (epochs, seeds)
        assert cell["values"]["val_loss"] == cell["history"]["val_loss"][-1]
        assert cell["verdict"] is None or isinstance(cell["verdict"], str)
        # independent seeds: different initialisations give different results
        assert cell["values"]["test_loss"][0] != cell["values"]["test_loss"][1]
    # a larger learning rate gives a different model from the same seed
    assert saved["cells"][0]["values"]["test_loss"] != saved["cells"][1]["values"]["test_loss"]
    assert (
        report.load_result(tmp_path / "study_tiny.json")["cells"][0]["values"]
        == saved["cells"][0]["values"]
    )

    # the same seeds again, in the other order: identical numbers for each seed
    again = run_study(TINY.replace(seeds=(1, 0)), diagnose=False, verbose=0)
    for first, second in zip(result["cells"], again["cells"], strict=True):
        for name, values in first["values"].items():
            assert second["values"][name] == values[::-1], name
        for name, curve in first["history"].items():
            assert [row[::-1] for row in second["history"][name]] == curve, name
