"""jaxnet.sklearn's MLPs against scikit-learn's, same data and settings, in one process.

    python benchmarks/bench_sklearn.py [--quick]

For digits (MLPClassifier, 1347 train / 450 test, pixels / 16) and diabetes (MLPRegressor,
standardised, 331 / 111) and each solver: the test score of both, the last training loss of
both, the epochs (or L-BFGS iterations) each ran, and the wall time of a first fit (compile
included) and of a second fit of the same shapes (the compiled programs reused), with
scikit-learn's time over jaxnet's.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from sklearn import neural_network
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

from jaxnet import sklearn as jaxnet_sklearn  # noqa: E402


def data(name):
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return train_test_split(X / 16, y, random_state=0)
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, (y - y.mean()) / y.std(), random_state=0)


def timed_fit(cls, settings, X, y):
    start = time.perf_counter()
    model = cls(**settings).fit(X, y)
    return model, time.perf_counter() - start


def main(quick: bool = False):
    warnings.simplefilter("ignore", ConvergenceWarning)
    epochs = 20 if quick else 200
    cases = [
        ("digits", "MLPClassifier", {"solver": "adam"}),
        ("digits", "MLPClassifier", {"solver": "sgd", "learning_rate_init": 0.1}),
        ("digits", "MLPClassifier", {"solver": "lbfgs"}),
        ("diabetes", "MLPRegressor", {"solver": "adam", "learning_rate_init": 0.01}),
        ("diabetes", "MLPRegressor", {"solver": "lbfgs", "alpha": 1.0}),
    ]
    rows = []
    for dataset, name, params in cases:
        X_train, X_test, y_train, y_test = data(dataset)
        settings = {"max_iter": epochs, "random_state": 0, **params}
        scores, losses, iters, times = [], [], [], []
        for library in (neural_network, jaxnet_sklearn):
            cls = getattr(library, name)
            model, first = timed_fit(cls, settings, X_train, y_train)
            _, second = timed_fit(cls, settings, X_train, y_train)
            scores.append(model.score(X_test, y_test))
            losses.append(float(model.loss_))
            iters.append(model.n_iter_)
            times.append((first, second))
        rows.append([
            dataset, params["solver"], scores[0], scores[1], losses[0], losses[1],
            f"{iters[0]}/{iters[1]}", times[0][0], times[1][0], times[0][1], times[1][1],
            times[0][1] / times[1][1],
        ])  # fmt: skip
    print(f"# scikit-learn vs jaxnet.sklearn, max_iter={epochs}; {common.machine()}")
    header = [
        "data", "solver", "sklearn score", "jaxnet score", "sklearn loss", "jaxnet loss",
        "iterations", "sklearn 1st fit s", "jaxnet 1st fit s", "sklearn 2nd fit s",
        "jaxnet 2nd fit s", "sklearn / jaxnet (2nd)",
    ]  # fmt: skip
    print(common.table(header, rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
