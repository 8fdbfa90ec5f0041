"""Text table, JSON report and PNG plots over a synthetic history (no training needed)."""

import json

import numpy as np

from jaxnet.diagnostics.report import (
    format_table,
    plot_gradient_flow,
    profile_by_epoch,
    save_plots,
    to_report,
)


def _history():
    steps = np.arange(0, 40, 10)
    layers = {}
    for depth, name in enumerate(["dense_0", "dense_2", "dense_10"]):
        layers[name] = {
            "grad_norm": 10.0 ** (depth - 3) * (1 + steps / 10),
            "grad_zero_fraction": np.zeros(4),
            "grad_nonfinite": np.zeros(4),
            "param_norm": np.ones(4),
            "update_ratio": np.full(4, 1e-3),
        }
    layers["relu_1"] = {
        "activation_mean": np.full(4, 0.5),
        "dead_fraction": np.array([0.0, 0.25, 0.5, np.nan]),
        "dead_units": np.array([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], float),
    }
    return {"step": steps, "epoch": np.array([0, 0, 1, 1]), "loss": np.ones(4), "layers": layers}


def test_table_lists_layers_in_depth_order_with_the_chosen_step():
    table = format_table(_history(), index=1)
    names = [line.split()[0] for line in table.splitlines()[2:-1]]
    assert names == ["dense_0", "relu_1", "dense_2", "dense_10"]
    assert "25%" in table and "(probed step 10)" in table
    assert "-" in table.splitlines()[3]  # relu_1 has no gradient columns


def test_report_is_strict_json_with_latest_values_and_findings():
    report = to_report(_history())
    text = json.dumps(report, allow_nan=False)
    assert report["latest"]["relu_1"]["dead_fraction"] is None
    assert report["latest"]["dense_10"]["grad_norm"] == 10.0 ** (2 - 3) * 4
    assert report["history"]["layers"]["relu_1"]["dead_units"][2] == [1.0, 1.0, 0.0, 0.0]
    kinds = [f["kind"] for f in report["findings"]]
    assert "vanishing" in kinds  # dense_0 is 1e-2 of the output layer
    assert json.loads(text)["history"]["step"] == [0.0, 10.0, 20.0, 30.0]


def test_profile_is_the_geometric_mean_per_epoch():
    layers, epochs, values = profile_by_epoch(_history())
    assert layers == ["dense_0", "dense_2", "dense_10"] and epochs == [0.0, 1.0]
    expected = np.sqrt(1e-3 * 1 * 1e-3 * 2)  # dense_0, steps 0 and 10
    np.testing.assert_allclose(values[0, 0], expected)


def test_plots_are_written_as_png(tmp_path):
    paths = save_plots(_history(), tmp_path, prefix="x_")
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    figure = plot_gradient_flow(_history(), label="model")
    assert figure.axes[0].get_yscale() == "log"
