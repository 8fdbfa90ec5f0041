"""User arrays as NumPy, checked once: numbers, not empty, finite, one row per example.

- :func:`to_numpy`: lists, tuples, pandas objects and arrays become NumPy arrays, once;
- :func:`num_examples`: the common number of rows of every leaf.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.errors import DataError


def _is_array(value) -> bool:
    """An array-like with at least one axis (NumPy, JAX, pandas, ...), not a Python sequence."""
    return hasattr(value, "shape") and hasattr(value, "dtype") and len(value.shape) >= 1


def _several(value) -> bool:
    """A tuple of arrays or dicts: several inputs (a pytree). A list is one array (its rows)."""
    return (
        isinstance(value, tuple)
        and len(value) > 0
        and all(_is_array(v) or isinstance(v, Mapping) for v in value)
    )


def _numeric(a, name: str) -> np.ndarray:
    """``a`` as a NumPy array of numbers (or bools), or a :class:`DataError` saying what to pass."""
    if a is None:
        raise DataError(f"{name} is None; pass an array with one row per example", ("data",))
    try:
        values = np.asarray(a)
    except (ValueError, TypeError):  # a ragged nested list
        raise DataError(
            f"{name} is a ragged nested sequence (rows of different lengths); every example must "
            "have the same shape",
            ("data",),
        ) from None
    if values.dtype == object and hasattr(a, "to_numpy"):  # pandas nullable columns: NA -> NaN
        try:
            values = a.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            pass
    if values.dtype == object and values.ndim > 0:  # e.g. Decimal or mixed numbers
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if values.dtype.kind == "V" and jnp.issubdtype(values.dtype, jnp.floating):  # bfloat16
        values = values.astype(np.float32)
    if values.dtype.kind not in "biuf":
        if hasattr(a, "columns") and hasattr(a, "dtypes"):  # a table: name its bad columns
            bad = [str(c) for c, d in a.dtypes.items() if getattr(d, "kind", "O") not in "biuf"]
            what = f"a table with non-numeric columns {bad[:5]}"
        elif values.ndim == 0:
            what = f"a {type(a).__name__}"
        else:
            what = f"of dtype {values.dtype}"
        raise DataError(
            f"{name} is {what}; pass real numbers (a NumPy array, list or numeric pandas object): "
            "encode text and categories as numbers (e.g. class indices or one-hot)",
            ("data",),
        )
    if values.ndim == 0:
        raise DataError(
            f"{name} is a single value (shape ()); pass an array with one row per example",
            ("data",),
        )
    if values.shape[0] == 0:
        raise DataError(f"{name} is empty (shape {values.shape}): no examples", ("data",))
    return values


def to_numpy(x, name: str, dtype=np.float32):
    """``x`` as NumPy: one array, or a pytree of arrays for several inputs; non-empty and finite.

    Accepted: NumPy and JAX arrays, nested lists/tuples of numbers, a list of rows (arrays),
    pandas ``DataFrame``/``Series`` (converted once); a dict, or a tuple of arrays, is several
    inputs (a pytree).
    Floating leaves are cast to ``dtype``; so are integer and bool leaves of inputs (``name``
    starting with ``"x"``), while integer targets keep their type (class labels).
    """
    if isinstance(x, Mapping):
        return {k: to_numpy(v, f"{name}[{k!r}]", dtype) for k, v in x.items()}
    if _several(x):
        return type(x)(to_numpy(v, f"{name}[{i}]", dtype) for i, v in enumerate(x))
    a = _numeric(x, name)
    if a.dtype.kind == "f" or name.startswith("x"):
        a = a.astype(dtype, copy=False)
        with np.errstate(over="ignore", invalid="ignore"):  # huge finite values may sum to inf
            bad = None if np.isfinite(a.sum()) else ~np.isfinite(a)  # (a sum is a fast first look)
        if bad is not None and bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise DataError(
                f"{name} has {int(bad.sum())} non-finite values (NaN/inf) in {rows.size} rows, "
                f"first rows {rows[:5].tolist()}; impute or drop them before training",
                ("data",),
            )
    return a


def num_examples(x, y=None) -> int:
    """The common leading dimension of every leaf of ``x`` (and ``y``)."""
    lengths = {leaf.shape[0] for leaf in jax.tree.leaves((x, y))}
    if len(lengths) != 1:
        raise DataError(
            f"x and y leaves have different numbers of examples: {sorted(lengths)}", ("data",)
        )
    return lengths.pop()
