"""Splitting and scaling arrays: :func:`train_test_split`, :func:`standardize`."""

from __future__ import annotations

import numpy as np

from jaxnet.errors import DataError


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
