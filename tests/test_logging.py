"""Progress bar, CSV/JSON-lines loggers, verbose levels and training-curve plots."""

import csv
import io
import json
import sys

import numpy as np
import optax
import pytest

from jaxnet import optim, recipes
from jaxnet.plots import curve_names, plot_history
from jaxnet.train.callbacks import PrintProgress
from jaxnet.train.fit import History, fit
from jaxnet.train.logging import CSVLogger, JSONLinesLogger, ProgressBar, default_progress


class Terminal(io.StringIO):
    """A stream that claims to be a terminal."""

    def isatty(self):
        return True


LOGS = [{"loss": 1.0 / (e + 1), "accuracy": 0.5 + 0.1 * e, "time": 0.01} for e in range(3)]


def _drive(callback, logs=LOGS, first_epoch=0):
    callback.on_train_begin(None)
    for epoch, entry in enumerate(logs, start=first_epoch):
        callback.on_epoch_end(epoch, entry, None)
    callback.on_train_end(None)


def test_progress_bar_is_silent_when_not_a_terminal_or_verbose_0():
    for stream, verbose in [(io.StringIO(), 1), (Terminal(), 0)]:
        bar = ProgressBar(3, stream=stream, verbose=verbose)
        _drive(bar)
        assert stream.getvalue() == ""


def test_progress_bar_on_a_terminal_shows_epochs_and_metrics():
    stream = Terminal()
    _drive(ProgressBar(3, stream=stream))
    text = stream.getvalue()
    assert "3/3" in text and "loss=0.3333" in text and "accuracy=0.7000" in text
    assert "time" not in text


def test_progress_bar_of_a_resumed_run_starts_part_way():
    stream = Terminal()
    bar = ProgressBar(5, stream=stream, leave=True)
    bar.on_train_begin(None)
    bar.on_epoch_end(3, LOGS[0], None)  # the first epoch this run trains is the 4th
    assert bar.bar.n == 4
    bar.on_epoch_end(4, LOGS[1], None)
    assert bar.bar.n == 5
    bar.on_train_end(None)


def test_default_progress_per_verbose_level():
    assert default_progress(3, 0, Terminal()) == []
    assert isinstance(default_progress(3, 1, Terminal())[0], ProgressBar)
    assert isinstance(default_progress(3, 1, io.StringIO())[0], PrintProgress)
    assert isinstance(default_progress(3, 2, Terminal())[0], PrintProgress)


def _small_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 0.5)
    return recipes.classifier_mlp(3, hidden=(8,)), x, y


def test_fit_verbose_levels_and_file_loggers(tmp_path, capsys):
    recipe, x, y = _small_problem()
    loggers = [CSVLogger(tmp_path / "log.csv"), JSONLinesLogger(tmp_path / "logs" / "log.jsonl")]
    _, history = fit(recipe.model, recipe.loss, optim.adam(1e-2), x, y, epochs=3, batch_size=12,
                     metrics=recipe.metrics, validation_split=0.2, callbacks=loggers,
                     verbose=1)  # fmt: skip
    out, err = capsys.readouterr()
    # Captured output is not a terminal: one line per epoch instead of a bar.
    assert [line.split()[1] for line in out.splitlines()] == ["1/3", "2/3", "3/3"]
    assert err == ""
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    lines = (tmp_path / "logs" / "log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(rows) == len(records) == 3
    for name, values in history.to_dict().items():
        assert [float(row[name]) for row in rows] == values  # exact: repr round-trips floats
        assert [record[name] for record in records] == values
    assert (
        [int(row["epoch"]) for row in rows] == [record["epoch"] for record in records] == [1, 2, 3]
    )
    # verbose=0 is checked in test_robustness.py (a fit that prints nothing).


def test_csv_logger_append_keeps_one_header(tmp_path):
    path = tmp_path / "log.csv"
    _drive(CSVLogger(path), LOGS[:2])
    _drive(CSVLogger(path, append=True), LOGS[2:], first_epoch=2)
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["loss"]) for r in rows] == [entry["loss"] for entry in LOGS]


def test_json_lines_logger_writes_null_for_non_finite(tmp_path):
    path = tmp_path / "log.jsonl"
    _drive(JSONLinesLogger(path), [{"loss": float("nan"), "val_loss": float("inf")}])
    assert json.loads(path.read_text()) == {"epoch": 1, "loss": None, "val_loss": None}


def test_plot_history_writes_a_png_with_train_and_validation_curves(tmp_path):
    history = History()
    for epoch in range(4):
        train = {"loss": 1.0 / (epoch + 1), "accuracy": 0.6 + 0.1 * epoch, "time": 0.1}
        history.append(train | {"val_loss": 1.2 / (epoch + 1), "val_accuracy": 0.55 + 0.1 * epoch})
    assert curve_names(history) == ["loss", "accuracy"]
    figure = plot_history(history, tmp_path / "plots" / "curves.png", title="t")
    assert (tmp_path / "plots" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss_axes, accuracy_axes = figure.axes
    assert [line.get_label() for line in loss_axes.lines] == ["train", "validation"]
    np.testing.assert_array_equal(loss_axes.lines[1].get_ydata(), history["val_loss"])
    np.testing.assert_array_equal(accuracy_axes.lines[0].get_xdata(), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="empty"):
        plot_history({})


def test_plot_history_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_history({"loss": [1.0]})


def _read_scalars(log_dir):
    """Parse TensorBoard event files by hand: TFRecord framing + tensorboardX's Event proto."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            record = data[offset + 12 : offset + 12 + length]
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_logger_writes_every_logged_value(tmp_path):
    import jaxnet
    from jaxnet.train.logging import TensorBoardLogger

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    recipe = jaxnet.classifier_mlp(2, hidden=(8,))
    _, history = jaxnet.fit(
        recipe.model, recipe.loss, optax.sgd(0.1), x, y, epochs=3, batch_size=16,
        metrics=recipe.metrics, validation_split=0.25, verbose=0,
        callbacks=[TensorBoardLogger(tmp_path)],
    )  # fmt: skip
    scalars = _read_scalars(tmp_path)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        steps, values = zip(*scalars[name], strict=True)
        assert steps == (1, 2, 3)
        np.testing.assert_allclose(values, history[name], rtol=1e-6)
