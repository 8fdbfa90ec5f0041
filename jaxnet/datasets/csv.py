"""A careful CSV reader: :func:`load_csv`.

Every problem (missing file, missing values, a wrong target name, text in a feature column, ragged
rows) is a :class:`~jaxnet.errors.DataError` that says where.
"""

from __future__ import annotations

import csv
import difflib
import math
from pathlib import Path

import numpy as np

from jaxnet.datasets.dataset import TASKS, Dataset
from jaxnet.errors import ConfigError, DataError

MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-"}
# A longer line is not CSV text (e.g. /dev/zero, a binary file): refused before memory runs out.
MAX_LINE_CHARS = 1 << 20
# A target with integer values and at most this many distinct ones is taken for class labels.
MAX_AUTO_CLASSES = 20


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _lines(handle, path: Path):
    """The file's lines, each at most :data:`MAX_LINE_CHARS` long and free of NUL characters."""
    number = 0
    while line := handle.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise DataError(
                f"{path}, line {number}: longer than {MAX_LINE_CHARS:,} characters without a line "
                "break; not a CSV text file",
                ("load_csv",),
            )
        if "\0" in line:
            raise DataError(
                f"{path}, line {number}: holds NUL characters; not a CSV text file", ("load_csv",)
            )
        yield line


def _read_table(path: Path, delimiter: str) -> list[list[str]]:
    """The file's non-blank rows, split into fields; at least one row."""
    if not path.exists():
        raise DataError(f"no such file: {path}", ("load_csv",))
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a CSV file", ("load_csv",))
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [
                row
                for row in csv.reader(_lines(handle, path), delimiter=delimiter)
                if any(c.strip() for c in row)
            ]
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not a UTF-8 text file ({error.reason})", ("load_csv",)
        ) from None
    except csv.Error as error:  # e.g. a quoted field longer than csv.field_size_limit()
        raise DataError(f"{path} is not readable as CSV ({error})", ("load_csv",)) from None
    except OSError as error:  # not readable: permissions, a device
        raise DataError(f"cannot read {path} ({error.strerror or error})", ("load_csv",)) from None
    if not rows:
        raise DataError(f"{path} is empty: expected a header line and data rows", ("load_csv",))
    return rows


def _read_rows(path: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    """The header (column names) and the data rows of a CSV file with a header line."""
    rows = _read_table(path, delimiter)
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


def _missing_report(path, header, body, columns, start: int = 2) -> str | None:
    counts, first = {}, {}
    for line, row in enumerate(body, start=start):
        for j in columns:
            if row[j].strip().lower() in MISSING:
                counts[header[j]] = counts.get(header[j], 0) + 1
                first.setdefault(header[j], line)
    if not counts:
        return None
    parts = [f"{name!r}: {n} (first on line {first[name]})" for name, n in counts.items()]
    return f"{path} has missing values in column(s) " + ", ".join(parts)


def _features(path, header, body, columns, owner="load_csv", start: int = 2) -> np.ndarray:
    """The numeric ``columns`` of every row as float64 ``(rows, len(columns))``; the first row
    is line ``start`` of the file."""
    x = np.empty((len(body), len(columns)), np.float64)
    for line, row in enumerate(body, start=start):
        for k, j in enumerate(columns):
            value = _number(row[j])
            if value is None:
                raise DataError(
                    f"{path}, line {line}: column {header[j]!r} is not numeric (value {row[j]!r}); "
                    "encode text columns as numbers (e.g. one-hot) or drop them",
                    (owner,),
                )
            if not math.isfinite(value):
                raise DataError(
                    f"{path}, line {line}: column {header[j]!r} holds {row[j]!r}; "
                    "values must be finite",
                    (owner,),
                )
            x[line - start, k] = value
    return x


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

    x = _features(path, header, body, features)

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


def load_features(
    path, columns=(), *, n_columns: int | None = None, delimiter: str = ","
) -> np.ndarray:
    """New examples for a trained model: float32 ``(rows, n)`` from a CSV file.

    - With a header line and ``columns`` (names): those columns, in this order; others (an id,
      the target) are ignored.
    - Without a header line (the first row is all numbers): every column, by position; a row
      must have ``n = len(columns)`` (or ``n_columns``) fields.
    - With a header line but no ``columns``: every column, by position; there must be
      ``n_columns`` of them.

    Raises :class:`~jaxnet.errors.DataError` as :func:`load_csv` does, for a missing column, and
    for a wrong number of columns (naming the expected and the actual count).
    """
    path, owner = Path(path), "load_features"
    columns = tuple(columns)
    expected = len(columns) if columns else n_columns
    rows = _read_table(path, delimiter)
    numbers = [_number(cell) is not None for cell in rows[0]]
    missing = [cell.strip().lower() in MISSING for cell in rows[0]]
    if any(numbers) and all(n or m for n, m in zip(numbers, missing, strict=True)):  # no header
        names = list(columns) or [f"column {j + 1}" for j in range(len(rows[0]))]
        if expected is not None:
            for line, row in enumerate(rows, start=1):
                if len(row) != expected:
                    raise DataError(
                        f"{path}, line {line}: {len(row)} columns, but the model takes "
                        f"{expected}{_named(columns)}; without a header line, the columns are "
                        "the model's inputs in order",
                        (owner,),
                    )
        return _table(path, names, rows, list(range(len(names))), start=1)
    header, body = _read_rows(path, delimiter)
    if not columns:
        if expected is not None and len(header) != expected:
            raise DataError(
                f"{path} has {len(header)} columns {_first(header)}, but the model takes "
                f"{expected} and records no column names to choose them by",
                (owner,),
            )
        return _table(path, header, body, list(range(len(header))))
    absent = [c for c in columns if c not in header]
    if absent:
        raise DataError(
            f"{path} lacks the column(s) {absent[:5]}{' ...' if len(absent) > 5 else ''} the "
            f"model takes; its columns are {_first(header)}",
            (owner,),
        )
    return _table(path, header, body, [header.index(c) for c in columns])


def _table(path, header, body, wanted, start: int = 2) -> np.ndarray:
    missing = _missing_report(path, header, body, wanted, start)
    if missing:
        raise DataError(missing + "; impute or drop those rows", ("load_features",))
    return _features(path, header, body, wanted, "load_features", start).astype(np.float32)


def _first(names, k: int = 10) -> str:
    return f"{list(names[:k])}{' ...' if len(names) > k else ''}"


def _named(columns) -> str:
    return f" ({', '.join(columns[:3])}{', ...' if len(columns) > 3 else ''})" if columns else ""
