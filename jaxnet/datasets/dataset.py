"""What every loader returns: a :class:`Dataset` (one set of examples) or :class:`Splits`."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

TASKS = ("regression", "binary", "multiclass")


class Dataset(NamedTuple):
    """Examples ``x``, targets ``y`` and what they mean.

    ``x``: features ``(n, d)`` float32 for tabular sets, or images ``(n, H, W, C)`` uint8 (NHWC,
    memory-mapped, read-only) for the standard image sets. ``y``: int32 labels ``(n,)`` for
    classification, float32 ``(n,)`` for regression.
    """

    x: np.ndarray
    y: np.ndarray
    task: str  # "regression", "binary" or "multiclass"
    feature_names: tuple[str, ...]  # () for images
    class_names: tuple[str, ...]  # () for regression
    name: str

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


class Splits(NamedTuple):
    """A training and a test :class:`Dataset`: ``train, test = jaxnet.datasets.load("mnist")``."""

    train: Dataset
    test: Dataset
