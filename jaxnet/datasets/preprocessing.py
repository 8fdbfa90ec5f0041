"""Splitting and scaling arrays: :func:`train_test_split`, :func:`standardize`."""

from __future__ import annotations

import numpy as np

from jaxnet.errors import DataError, check_int, check_range


def _floats(x, name: str) -> np.ndarray:
    try:
        return np.asarray(x, np.float32)
    except (TypeError, ValueError):
        raise DataError(
            f"{name} must hold numbers, got dtype {np.asarray(x).dtype}", ("standardize",)
        ) from None


def train_test_split(x, y, test_fraction: float = 0.2, seed: int = 0):
    """Shuffle with ``seed``, hold out ``test_fraction``.

    Returns ``((x_train, y_train), (x_test, y_test))``.
    """
    owner = "train_test_split"
    check_range(owner, "test_fraction", test_fraction, 0, 1, low_open=True, high_open=True)
    check_int(owner, "seed", seed, 0)
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
    arrays = [_floats(x, f"arrays[{i}]") for i, x in enumerate((x_train, *others))]
    mean = arrays[0].mean(axis=0)
    std = arrays[0].std(axis=0)
    std = np.where(std > eps, std, 1.0).astype(np.float32)
    scaled = [(x - mean) / std for x in arrays]
    return (*scaled, (mean, std))
