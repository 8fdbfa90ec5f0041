"""Small data sets for examples and the CLI, a careful CSV reader, and preprocessing helpers.

- :func:`load_dataset`: ``digits``, ``breast_cancer``, ``iris``, ``wine`` (classification) and
  ``diabetes`` (regression), bundled with scikit-learn (nothing is downloaded).
- :func:`load_csv`: a numeric CSV file with a header and a named target column; every problem
  (missing file, missing values, a wrong target name, text in a feature column, ragged rows) is a
  :class:`~jaxnet.errors.DataError` that says where.
- :func:`train_test_split` and :func:`standardize` (statistics from the training part only).

>>> data = load_dataset("digits")
>>> (x_train, y_train), (x_test, y_test) = train_test_split(data.x, data.y, test_fraction=0.2)
>>> x_train, x_test, _ = standardize(x_train, x_test)
"""

from __future__ import annotations

import csv
import difflib
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxnet.errors import ConfigError, DataError

TASKS = ("regression", "binary", "multiclass")
MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-"}
# A target with integer values and at most this many distinct ones is taken for class labels.
MAX_AUTO_CLASSES = 20


class Dataset(NamedTuple):
    """Features ``x`` ``(n, d)`` float32, targets ``y`` (int32 labels ``(n,)`` for classification,
    float32 ``(n,)`` for regression), and what they mean."""

    x: np.ndarray
    y: np.ndarray
    task: str  # "regression", "binary" or "multiclass"
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]  # () for regression
    name: str

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


_BUNDLED = {
    "digits": ("load_digits", "multiclass"),
    "breast_cancer": ("load_breast_cancer", "binary"),
    "iris": ("load_iris", "multiclass"),
    "wine": ("load_wine", "multiclass"),
    "diabetes": ("load_diabetes", "regression"),
}
DATASETS = tuple(_BUNDLED)


def load_dataset(name: str) -> Dataset:
    """One of :data:`DATASETS`, from scikit-learn's bundled files (no download).

    ``digits``: 1797 8x8 images as 64 pixel values 0..16, 10 classes. ``breast_cancer``: 569 x 30,
    binary. ``iris``: 150 x 4, 3 classes. ``wine``: 178 x 13, 3 classes. ``diabetes``: 442 x 10,
    a disease-progression score (regression).
    """
    if name not in _BUNDLED:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown data set {name!r}: choose from {list(DATASETS)}{hint}", ("datasets",)
        )
    try:
        import sklearn.datasets
    except ImportError as error:
        raise ImportError(
            f"the bundled data set {name!r} comes with scikit-learn: pip install scikit-learn"
        ) from error
    loader, task = _BUNDLED[name]
    bunch = getattr(sklearn.datasets, loader)()
    x = np.asarray(bunch.data, np.float32)
    if task == "regression":
        y, classes = np.asarray(bunch.target, np.float32), ()
    else:
        y = np.asarray(bunch.target, np.int32)
        classes = tuple(str(c) for c in getattr(bunch, "target_names", np.unique(y)))
    features = tuple(str(f) for f in getattr(bunch, "feature_names", range(x.shape[1])))
    return Dataset(x, y, task, features, classes, name)


# ----------------------------------------------------------------------------- CSV


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _read_rows(path: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    if not path.exists():
        raise DataError(f"no such file: {path}", ("load_csv",))
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a CSV file", ("load_csv",))
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [
                row
                for row in csv.reader(handle, delimiter=delimiter)
                if any(c.strip() for c in row)
            ]
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not a UTF-8 text file ({error.reason})", ("load_csv",)
        ) from None
    if not rows:
        raise DataError(f"{path} is empty: expected a header line and data rows", ("load_csv",))
    header = [c.strip() for c in rows[0]]
    if len(rows) == 1:
        raise DataError(f"{path} has a header but no data rows", ("load_csv",))
    blank = [i + 1 for i, c in enumerate(header) if not c]
    if blank:
        raise DataError(f"{path}: header column(s) {blank} have no name", ("load_csv",))
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        raise DataError(f"{path}: duplicate column names {duplicates}", ("load_csv",))
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}",
                ("load_csv",),
            )
    return header, rows[1:]


def _missing_report(path, header, body, columns) -> str | None:
    counts, first = {}, {}
    for line, row in enumerate(body, start=2):
        for j in columns:
            if row[j].strip().lower() in MISSING:
                counts[header[j]] = counts.get(header[j], 0) + 1
                first.setdefault(header[j], line)
    if not counts:
        return None
    parts = [f"{name!r}: {n} (first on line {first[name]})" for name, n in counts.items()]
    return f"{path} has missing values in column(s) " + ", ".join(parts)


def load_csv(path, target: str, *, task: str | None = None, delimiter: str = ",") -> Dataset:
    """Read a numeric CSV file with a header line; ``target`` names the column to predict.

    Every other column is a feature and must be numeric and complete. For classification the
    target may hold numbers or text labels; they become int32 classes ``0..K-1`` (sorted), with
    the original labels in ``class_names``. ``task`` is ``"regression"``, ``"binary"`` or
    ``"multiclass"``; by default a text target or one with at most 20 distinct integer values is
    classification, anything else regression.

    Raises :class:`~jaxnet.errors.DataError` for: a missing/empty file, a header without data,
    duplicate or empty column names, rows with the wrong number of fields, a ``target`` that is not
    a column (with the closest name), no feature columns, missing values (empty, ``NA``, ``NaN``,
    ``null``, ``?``), non-numeric feature values, infinite values, a text target for regression,
    and a binary task whose target has more than two values.
    """
    path = Path(path)
    if task is not None and task not in TASKS:
        raise ConfigError(f"task must be one of {list(TASKS)} or None, got {task!r}", ("load_csv",))
    header, body = _read_rows(path, delimiter)
    if target not in header:
        close = difflib.get_close_matches(target, header, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"target column {target!r} is not in {path}; its columns are {header}{hint}",
            ("load_csv",),
        )
    t = header.index(target)
    features = [j for j in range(len(header)) if j != t]
    if not features:
        raise DataError(f"{path} has only the target column {target!r}; no features", ("load_csv",))
    missing = _missing_report(path, header, body, range(len(header)))
    if missing:
        raise DataError(missing + "; impute or drop those rows before training", ("load_csv",))

    x = np.empty((len(body), len(features)), np.float64)
    for line, row in enumerate(body, start=2):
        for k, j in enumerate(features):
            value = _number(row[j])
            if value is None:
                raise DataError(
                    f"{path}, line {line}: column {header[j]!r} is not numeric (value {row[j]!r}); "
                    "encode text columns as numbers (e.g. one-hot) or drop them",
                    ("load_csv",),
                )
            if not math.isfinite(value):
                raise DataError(
                    f"{path}, line {line}: column {header[j]!r} holds {row[j]!r}; "
                    "values must be finite",
                    ("load_csv",),
                )
            x[line - 2, k] = value

    cells = [row[t].strip() for row in body]
    numbers = [_number(c) for c in cells]
    numeric = all(v is not None for v in numbers)
    if numeric and not all(math.isfinite(v) for v in numbers):
        line = next(i for i, v in enumerate(numbers, start=2) if not math.isfinite(v))
        raise DataError(f"{path}, line {line}: target {target!r} is not finite", ("load_csv",))
    integral = numeric and all(float(v).is_integer() for v in numbers)
    if task is None:
        distinct = len(set(cells if not numeric else numbers))
        classification = not numeric or (integral and distinct <= MAX_AUTO_CLASSES)
        task = ("binary" if distinct == 2 else "multiclass") if classification else "regression"
    if task == "regression":
        if not numeric:
            line = next(i for i, v in enumerate(numbers, start=2) if v is None)
            raise DataError(
                f"{path}, line {line}: target {target!r} is {cells[line - 2]!r}, but "
                "regression needs numbers (pass task='multiclass' for text labels)",
                ("load_csv",),
            )
        y, classes = np.asarray(numbers, np.float32), ()
    else:
        keys = numbers if numeric else cells
        labels = sorted(set(keys))
        if task == "binary" and len(labels) != 2:
            raise DataError(
                f"task='binary' needs a target with exactly 2 values; {target!r} has {len(labels)}",
                ("load_csv",),
            )
        if len(labels) < 2:
            raise DataError(
                f"target {target!r} has a single value {labels}; nothing to learn", ("load_csv",)
            )
        index = {label: i for i, label in enumerate(labels)}
        y = np.asarray([index[k] for k in keys], np.int32)
        classes = tuple(str(int(c)) if numeric and integral else str(c) for c in labels)
    names = tuple(header[j] for j in features)
    return Dataset(x.astype(np.float32), y, task, names, classes, path.stem)


# ----------------------------------------------------------------------------- preprocessing


def train_test_split(x, y, test_fraction: float = 0.2, seed: int = 0):
    """Shuffle with ``seed``, hold out ``test_fraction``.

    Returns ``((x_train, y_train), (x_test, y_test))``.
    """
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    if len(y) != n:
        raise DataError(f"x has {n} examples but y has {len(y)}", ("train_test_split",))
    n_test = int(round(n * test_fraction))
    if not 0.0 < test_fraction < 1.0 or n_test == 0 or n_test == n:
        raise DataError(
            f"test_fraction={test_fraction} leaves {n - n_test} training and {n_test} test "
            f"examples out of {n}; both must be at least 1",
            ("train_test_split",),
        )
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])


def standardize(x_train, *others, eps: float = 1e-8):
    """Scale features to zero mean and unit variance using the *training* statistics only.

    Returns ``(x_train_scaled, *others_scaled, (mean, std))``; constant features (std 0) are only
    centred, never divided by 0.
    """
    x_train = np.asarray(x_train, np.float32)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > eps, std, 1.0).astype(np.float32)
    scaled = [(np.asarray(x, np.float32) - mean) / std for x in (x_train, *others)]
    return (*scaled, (mean, std))
