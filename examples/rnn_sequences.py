"""GRU and LSTM forecasting a noisy seasonal series, against naive forecasts.

    python examples/rnn_sequences.py [--epochs 15]

The series has a daily cycle (period 24) whose amplitude drifts slowly, plus noise. Each model reads
the last 48 values and predicts the next one. Figures of merit: test RMSE of the RNNs next to the
naive forecast (last value), the seasonal naive forecast (value 24 steps ago) and a linear
autoregression on the same window. The noise's standard deviation (0.2) is the floor.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LinearRegression

from jaxnet import losses, optim
from jaxnet.core import serial
from jaxnet.layers import RNN, Dense, GRUCell, LSTMCell
from jaxnet.train import fit, predict

WINDOW, PERIOD, NOISE = 48, 24, 0.2


def seasonal_series(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    amplitude = 1.0 + 0.5 * np.sin(2 * np.pi * t / 500)
    return (amplitude * np.sin(2 * np.pi * t / PERIOD) + NOISE * rng.normal(size=n)).astype(
        np.float32
    )


def windows(series):
    index = np.arange(WINDOW)[None, :] + np.arange(len(series) - WINDOW)[:, None]
    return series[index][..., None], series[WINDOW:, None]  # (n, 48, 1), (n, 1)


def rmse(prediction, target):
    return float(np.sqrt(np.mean((np.asarray(prediction) - target) ** 2)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = windows(seasonal_series(3000, args.seed))
    split = int(0.8 * len(x))  # train on the past, test on the future
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]
    print(f"series: {len(x_train)} train / {len(x_test)} test windows of {WINDOW} steps\n")

    rows = [
        ("naive (last value)", rmse(x_test[:, -1], y_test), 0.0),
        ("seasonal naive (t - 24)", rmse(x_test[:, -PERIOD], y_test), 0.0),
    ]
    start = time.perf_counter()
    linear = LinearRegression().fit(x_train[..., 0], y_train)
    rows.append(
        ("linear AR(48)", rmse(linear.predict(x_test[..., 0]), y_test), time.perf_counter() - start)
    )

    for name, cell in [("GRU(32)", GRUCell(32)), ("LSTM(32)", LSTMCell(32))]:
        model = serial(RNN(cell), Dense(1))
        start = time.perf_counter()
        ts, _ = fit(
            model, losses.mean_squared_error, optim.adam(3e-3), x_train, y_train,
            epochs=args.epochs, batch_size=32, seed=args.seed, verbose=0,
        )  # fmt: skip
        rows.append((name, rmse(predict(model, ts.params, ts.state, x_test), y_test),
                     time.perf_counter() - start))  # fmt: skip

    print(f"{'forecast':26s} {'test RMSE':>9s} {'time':>7s}")
    for name, value, seconds in rows:
        print(f"{name:26s} {value:9.4f} {seconds:6.1f}s")
    print(f"{'noise floor':26s} {NOISE:9.4f}")
    best_rnn = min(value for name, value, _ in rows[3:])
    print(f"\nbest RNN RMSE {best_rnn:.4f} vs seasonal naive {rows[1][1]:.4f} "
          f"({rows[1][1] / best_rnn:.2f}x lower error)")  # fmt: skip


if __name__ == "__main__":
    main()
