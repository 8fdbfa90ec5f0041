"""Data sets for examples and the CLI, a careful CSV reader, and preprocessing helpers.

- :func:`load`: one entry point by name, returning ``(train, test)`` :class:`Dataset`\\ s. The
  standard image sets (``mnist``, ``fashion_mnist``, ``kmnist``, ``cifar10``, ``cifar100``; see
  :data:`REGISTRY`) are downloaded once with pinned SHA-256, cached as ``.npy`` and memory-mapped;
  the scikit-learn sets (:data:`DATASETS`) get a fixed 80/20 split.
- :func:`load_dataset`: ``digits``, ``breast_cancer``, ``iris``, ``wine`` (classification) and
  ``diabetes`` (regression), whole, bundled with scikit-learn (nothing is downloaded).
- :func:`load_csv`: a numeric CSV file with a header and a named target column; every problem
  (missing file, missing values, a wrong target name, text in a feature column, ragged rows) is a
  :class:`~jaxnet.errors.DataError` that says where; :func:`load_features`: the named feature
  columns of a CSV file of new examples (for a trained model).
- :func:`train_test_split` and :func:`standardize` (statistics from the training part only).

>>> data = load_dataset("digits")
>>> (x_train, y_train), (x_test, y_test) = train_test_split(data.x, data.y, test_fraction=0.2)
>>> x_train, x_test, _ = standardize(x_train, x_test)
>>> x_train.shape, x_test.shape
((1438, 64), (359, 64))

A standard image set (downloaded once)::

    train, test = load("mnist")
"""

from jaxnet.datasets.csv import load_csv, load_features
from jaxnet.datasets.dataset import TASKS, Dataset, Splits
from jaxnet.datasets.download import ChecksumError, DownloadError, Remote, cache_dir
from jaxnet.datasets.preprocessing import standardize, train_test_split
from jaxnet.datasets.standard import REGISTRY, Source, load
from jaxnet.datasets.toy import DATASETS, load_dataset

__all__ = [
    "DATASETS",
    "REGISTRY",
    "TASKS",
    "ChecksumError",
    "Dataset",
    "DownloadError",
    "Remote",
    "Source",
    "Splits",
    "cache_dir",
    "load",
    "load_csv",
    "load_features",
    "load_dataset",
    "standardize",
    "train_test_split",
]
