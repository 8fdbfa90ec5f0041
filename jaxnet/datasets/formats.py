"""Readers for the file formats of the standard image sets (no pickle anywhere).

- IDX (MNIST, Fashion-MNIST, KMNIST): a big-endian header ``0 0 <type> <ndim>``, ``ndim`` uint32
  sizes, then the values; gzip-compressed.
- CIFAR binary version: records of ``<label byte(s)><1024 red><1024 green><1024 blue>`` bytes, each
  channel 32x32 row-major, inside a ``.tar.gz`` with a text file of class names.

Each reader takes ``{filename: path}`` and returns ``(arrays, class_names)`` where ``arrays`` holds
``x_train``, ``y_train``, ``x_test``, ``y_test``: uint8 NHWC images and int32 labels.
"""

from __future__ import annotations

import gzip
import math
import struct
import tarfile

import numpy as np

from jaxnet.errors import DataError

IDX_UBYTE = 0x08
CIFAR_SIDE = 32
CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE


def read_idx(data: bytes, what: str) -> np.ndarray:
    """Decode one (uncompressed) IDX file of unsigned bytes; ``what`` names it in errors."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{what} is not an IDX file (its first bytes are {data[:4]!r})")
    if data[2] != IDX_UBYTE:
        raise DataError(f"{what}: IDX value type 0x{data[2]:02x}, expected 0x08 (unsigned byte)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{what}: the IDX header is cut short ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != math.prod(shape):
        raise DataError(
            f"{what}: the header announces shape {shape} ({math.prod(shape)} values), "
            f"but {len(data) - header} bytes follow it"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _idx_gz(path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        return read_idx(handle.read(), path.name)


def read_mnist_like(paths, class_names: tuple[str, ...]):
    """The four ``*-idx?-ubyte.gz`` files of MNIST, Fashion-MNIST or KMNIST."""
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _idx_gz(paths[f"{prefix}-images-idx3-ubyte.gz"])
        labels = _idx_gz(paths[f"{prefix}-labels-idx1-ubyte.gz"])
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(
                f"{prefix} files: images must be (n, rows, cols) and labels (n,), got "
                f"{images.shape} and {labels.shape}"
            )
        arrays[f"x_{split}"] = images[..., None]  # NHWC with one channel
        arrays[f"y_{split}"] = labels.astype(np.int32)
    return arrays, class_names


def _tar_members(path, names: list[str]) -> dict[str, bytes]:
    wanted, found = set(names), {}
    with tarfile.open(path, "r:gz") as archive:  # members are read, never extracted to disk
        for member in archive:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                found[name] = archive.extractfile(member).read()
    missing = [name for name in names if name not in found]
    if missing:
        raise DataError(f"{path.name} lacks {missing}")
    return found


def _cifar_records(data: bytes, label_bytes: int, label_index: int, what: str):
    record = label_bytes + CIFAR_PIXELS
    if len(data) % record:
        raise DataError(f"{what}: {len(data)} bytes is not a whole number of {record}-byte records")
    rows = np.frombuffer(data, np.uint8).reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), rows[:, label_index].astype(np.int32)


def _names(text: bytes) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.decode("ascii").splitlines() if line.strip())


def _read_cifar(archive, folder, train, test, names_file, label_bytes, label_index):
    members = _tar_members(archive, [f"{folder}/{n}" for n in (*train, test, names_file)])
    parts = [_cifar_records(members[f"{folder}/{n}"], label_bytes, label_index, n) for n in train]
    x_test, y_test = _cifar_records(members[f"{folder}/{test}"], label_bytes, label_index, test)
    arrays = {
        "x_train": np.concatenate([x for x, _ in parts]),
        "y_train": np.concatenate([y for _, y in parts]),
        "x_test": x_test,
        "y_test": y_test,
    }
    return arrays, _names(members[f"{folder}/{names_file}"])


def read_cifar10(paths):
    """``cifar-10-binary.tar.gz``: five training batches and a test batch, one label byte."""
    train = [f"data_batch_{i}.bin" for i in range(1, 6)]
    archive = paths["cifar-10-binary.tar.gz"]
    return _read_cifar(
        archive, "cifar-10-batches-bin", train, "test_batch.bin", "batches.meta.txt", 1, 0
    )


def read_cifar100(paths):
    """``cifar-100-binary.tar.gz``: records start with a coarse then a fine label byte; the fine
    label (100 classes) is returned."""
    archive = paths["cifar-100-binary.tar.gz"]
    return _read_cifar(
        archive, "cifar-100-binary", ["train.bin"], "test.bin", "fine_label_names.txt", 2, 1
    )
