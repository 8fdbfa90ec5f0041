"""Standard data sets by name: :func:`load` and the :data:`REGISTRY` of downloadable sets.

Each downloadable set is fetched once from the URLs Keras, TensorFlow Datasets and torchvision use,
checked against a SHA-256 pinned below, converted once to ``.npy`` files (uint8 NHWC images, int32
labels) and then opened memory-mapped on every later load. The CIFAR sets are read from their
*binary* archives, so no pickle is ever loaded.
"""

from __future__ import annotations

import difflib
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxnet.atomic import atomic_file
from jaxnet.datasets import formats
from jaxnet.datasets.dataset import Dataset, Splits
from jaxnet.datasets.download import Remote, cache_dir, fetch_all
from jaxnet.datasets.preprocessing import train_test_split
from jaxnet.datasets.toy import DATASETS, load_dataset
from jaxnet.errors import ConfigError, DataError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
META_FILE = "jaxnet-dataset.json"
META_FORMAT = 1
# The bundled scikit-learn sets have no official split: load() holds out this much, seed 0.
TOY_TEST_FRACTION = 0.2


class Source(NamedTuple):
    """A downloadable set: its files and a reader ``{filename: path} -> (arrays, class_names)``
    (see :mod:`jaxnet.datasets.formats`)."""

    files: tuple[Remote, ...]
    read: Callable
    homepage: str


def _mnist_like(mirrors, files, class_names, homepage) -> Source:
    remotes = tuple(
        Remote(name, sha256, size, tuple(mirror + name for mirror in mirrors))
        for name, size, sha256 in files
    )
    read = functools.partial(formats.read_mnist_like, class_names=class_names)
    return Source(remotes, read, homepage)


# Each file: (name, bytes, SHA-256).
# MNIST: SHA-256 and sizes from tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt
# (files at storage.googleapis.com/cvdf-datasets/mnist/); the same digests are published for the
# original yann.lecun.com files. Second mirror: torchvision's (torchvision/datasets/mnist.py).
_MNIST = _mnist_like(
    (
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    (
        ("train-images-idx3-ubyte.gz", 9912422,
         "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz", 28881,
         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz", 1648877,
         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz", 4542,
         "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    tuple(str(digit) for digit in range(10)),
    "http://yann.lecun.com/exdb/mnist/",
)  # fmt: skip

# Fashion-MNIST: SHA-256 from keras-team/keras, keras/src/datasets/fashion_mnist.py (FILE_HASHES),
# identical to tensorflow/datasets, tensorflow_datasets/url_checksums/fashion_mnist.txt (which
# gives the sizes). Mirrors: Keras's, then the one TFDS and torchvision use. Class names: Keras.
_FASHION_MNIST = _mnist_like(
    (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    (
        ("train-images-idx3-ubyte.gz", 26421880,
         "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        ("train-labels-idx1-ubyte.gz", 29515,
         "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        ("t10k-images-idx3-ubyte.gz", 4422102,
         "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        ("t10k-labels-idx1-ubyte.gz", 5148,
         "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ),
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "https://github.com/zalandoresearch/fashion-mnist",
)  # fmt: skip

# KMNIST: SHA-256 and sizes from tensorflow/datasets, tensorflow_datasets/url_checksums/kmnist.txt.
# Class names (romanised): pytorch/vision, torchvision/datasets/mnist.py, class KMNIST.
_KMNIST = _mnist_like(
    ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    (
        ("train-images-idx3-ubyte.gz", 18165135,
         "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"),
        ("train-labels-idx1-ubyte.gz", 29497,
         "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
        ("t10k-images-idx3-ubyte.gz", 3041136,
         "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"),
        ("t10k-labels-idx1-ubyte.gz", 5120,
         "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"),
    ),
    ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    "https://github.com/rois-codh/kmnist",
)  # fmt: skip

# CIFAR: the *binary* versions (no pickle). SHA-256 and sizes from tensorflow/datasets,
# tensorflow_datasets/url_checksums/cifar10.txt and cifar100.txt. Class names: from the archive.
_CIFAR10 = Source(
    (Remote("cifar-10-binary.tar.gz",
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171,
            ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",)),),
    formats.read_cifar10,
    "https://www.cs.toronto.edu/~kriz/cifar.html",
)  # fmt: skip
_CIFAR100 = Source(
    (Remote("cifar-100-binary.tar.gz",
            "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec", 168513733,
            ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",)),),
    formats.read_cifar100,
    "https://www.cs.toronto.edu/~kriz/cifar.html",
)  # fmt: skip

# Public and mutable: add a set, or replace an entry's URLs with a local mirror, by assigning here.
REGISTRY: dict[str, Source] = {
    "mnist": _MNIST,
    "fashion_mnist": _FASHION_MNIST,
    "kmnist": _KMNIST,
    "cifar10": _CIFAR10,
    "cifar100": _CIFAR100,
}


def _pins(source: Source) -> dict[str, str]:
    return {remote.filename: remote.sha256 for remote in source.files}


def cached_meta(folder: Path, source: Source) -> dict | None:
    """The cache's description if its .npy files were converted from exactly the pinned files."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    fresh = (
        meta.get("format") == META_FORMAT
        and meta.get("sha256") == _pins(source)
        and isinstance(meta.get("class_names"), list)
    )
    return meta if fresh and all((folder / f"{a}.npy").exists() for a in ARRAYS) else None


def _check(arrays: dict, class_names: tuple, name: str) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{split}: expected uint8 images (n, H, W, C) and labels (n,), got {x.dtype} "
                f"{x.shape} and {y.shape}",
                ("datasets", name),
            )
        if len(y) and not 0 <= y.min() <= y.max() < len(class_names):
            raise DataError(
                f"{split} labels span {y.min()}..{y.max()}, but there are {len(class_names)} "
                "class names",
                ("datasets", name),
            )


def _convert(name: str, source: Source, folder: Path, quiet: bool) -> dict:
    paths = fetch_all(source.files, folder, quiet=quiet, owner=("datasets", name))
    arrays, class_names = source.read(paths)
    _check(arrays, class_names, name)
    for key in ARRAYS:
        with atomic_file(folder / f"{key}.npy", owner=("datasets", name)) as handle:
            np.save(handle, arrays[key], allow_pickle=False)
    meta = {"format": META_FORMAT, "name": name, "sha256": _pins(source)}
    meta["class_names"] = list(class_names)
    # Written last: marks the cache complete.
    with atomic_file(folder / META_FILE, owner=("datasets", name)) as handle:
        handle.write(json.dumps(meta, indent=1).encode())
    if not quiet:
        shapes = ", ".join(f"{k} {arrays[k].shape}" for k in ARRAYS)
        print(f"jaxnet: {name} converted to {folder} ({shapes})", file=sys.stderr, flush=True)
    return meta


def load(name: str, *, data_dir=None, quiet: bool = False) -> Splits:
    """A data set by name, split into ``(train, test)`` :class:`~jaxnet.datasets.Dataset`\\ s.

    Downloadable (:data:`REGISTRY`): ``mnist``, ``fashion_mnist``, ``kmnist`` (28x28x1),
    ``cifar10``, ``cifar100`` (32x32x3, fine labels), with their official splits. ``x`` is uint8
    ``(n, H, W, C)`` opened with ``np.load(mmap_mode="r")`` (memory-mapped, read-only, not copied),
    ``y`` int32 ``(n,)``. The first load downloads into ``data_dir``, else ``$JAXNET_DATA_DIR``,
    else ``~/.cache/jaxnet/datasets``, under a folder named after the set, checks every file's
    pinned SHA-256 and converts it to ``.npy`` files; later loads only open those. ``quiet``
    silences the progress output (stderr).

    Bundled with scikit-learn (:data:`~jaxnet.datasets.DATASETS`, e.g. ``digits``): no official
    split exists, so 20 % is held out by ``train_test_split(..., 0.2, seed=0)``; use
    :func:`~jaxnet.datasets.load_dataset` for the whole set.

    Raises :class:`~jaxnet.datasets.DownloadError` (offline or unreachable: names the URL and the
    exact path to place each file by hand) and :class:`~jaxnet.datasets.ChecksumError` (a file's
    hash is not the pinned one; the file is discarded, never used).

    ::

        train, test = load("mnist")
        train.x.shape, train.x.dtype, test.y.shape  # ((60000, 28, 28, 1), uint8, (10000,))
    """
    if name in DATASETS:
        data = load_dataset(name)
        (x_train, y_train), (x_test, y_test) = train_test_split(
            data.x, data.y, TOY_TEST_FRACTION, seed=0
        )
        return Splits(data._replace(x=x_train, y=y_train), data._replace(x=x_test, y=y_test))
    if name not in REGISTRY:
        known = [*REGISTRY, *DATASETS]
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown data set {name!r}: choose from {known}{hint}", ("datasets",))
    source = REGISTRY[name]
    folder = cache_dir(data_dir) / name
    meta = cached_meta(folder, source) or _convert(name, source, folder, quiet)
    arrays = {key: np.load(folder / f"{key}.npy", mmap_mode="r") for key in ARRAYS}
    classes = tuple(meta["class_names"])
    return Splits(
        Dataset(arrays["x_train"], arrays["y_train"], "multiclass", (), classes, name),
        Dataset(arrays["x_test"], arrays["y_test"], "multiclass", (), classes, name),
    )
