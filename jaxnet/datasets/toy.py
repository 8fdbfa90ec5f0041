"""The small data sets bundled with scikit-learn (nothing is downloaded)."""

from __future__ import annotations

import difflib

import numpy as np

from jaxnet.datasets.dataset import Dataset
from jaxnet.errors import ConfigError

_BUNDLED = {
    "digits": ("load_digits", "multiclass"),
    "breast_cancer": ("load_breast_cancer", "binary"),
    "iris": ("load_iris", "multiclass"),
    "wine": ("load_wine", "multiclass"),
    "diabetes": ("load_diabetes", "regression"),
}
DATASETS = tuple(_BUNDLED)


def load_dataset(name: str) -> Dataset:
    """One of :data:`DATASETS`, whole, from scikit-learn's bundled files (no download).

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
            f"the bundled data set {name!r} comes with scikit-learn: pip install scikit-learn "
            '(or pip install "jaxnet-classic[examples]")'
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
