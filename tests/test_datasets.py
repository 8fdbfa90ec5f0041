"""jaxnet.datasets.load: downloads from a local HTTP server (no internet), pinned SHA-256,
atomic caching, .npy conversion and memory-mapped loads.

The test writes every file itself (IDX gz, CIFAR binary tar.gz) from arrays it chose, computes the
SHA-256 of those bytes, and registers them under a test name in the public ``REGISTRY``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import re
import socket
import struct
import sys
import tarfile
import threading

import numpy as np
import pytest

from jaxnet import datasets
from jaxnet.datasets import formats
from jaxnet.errors import ConfigError, DataError, JaxnetError


class _Server:
    """Serves ``files`` (url path -> bytes) on 127.0.0.1; ``/cut/...`` sends half a file with the
    full Content-Length, then closes (an interrupted transfer). Records every request path."""

    def __init__(self):
        self.files, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                cut = self.path.startswith("/cut/")
                body = server.files.get(self.path.removeprefix("/cut"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def downloads(self):
        return [path for path in self.requests if not path.endswith("/")]


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def closed_url():
    """A URL on a port nothing listens on: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _idx_gz(array: np.ndarray) -> bytes:
    """IDX as specified: 0, 0, type 0x08 (ubyte), ndim, big-endian uint32 sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _mnist_files(rng, n_train=5, n_test=3, rows=4, cols=3):
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    files = {
        "train-images-idx3-ubyte.gz": _idx_gz(arrays["x_train"]),
        "train-labels-idx1-ubyte.gz": _idx_gz(arrays["y_train"]),
        "t10k-images-idx3-ubyte.gz": _idx_gz(arrays["x_test"]),
        "t10k-labels-idx1-ubyte.gz": _idx_gz(arrays["y_test"]),
    }
    return arrays, files


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _cifar_bytes(images: np.ndarray, labels) -> bytes:
    """CIFAR binary records as documented: label byte(s), then 1024 R, 1024 G, 1024 B row-major."""
    records = [
        bytes(label) + image.transpose(2, 0, 1).tobytes()
        for image, label in zip(images, labels, strict=True)
    ]
    return b"".join(records)


def _register(monkeypatch, server, name, files, read, mirrors=None, sha256=None):
    """Serve ``files`` and register them in ``REGISTRY`` under ``name`` (pins from the bytes)."""
    sha256 = sha256 or {}
    remotes = []
    for filename, data in files.items():
        server.files[f"/{name}/{filename}"] = data
        urls = tuple(m + filename for m in (mirrors or [f"{server.url}/{name}/"]))
        remotes.append(datasets.Remote(filename, sha256.get(filename, _sha(data)), len(data), urls))
    source = datasets.Source(tuple(remotes), read, "https://example.invalid/")
    monkeypatch.setitem(datasets.REGISTRY, name, source)
    return source


def _mnist_reader(class_names=tuple("0123456789")):
    return lambda paths: formats.read_mnist_like(paths, class_names)


def _assert_nothing_cached(folder, filename):
    leftovers = [p.name for p in folder.iterdir()] if folder.exists() else []
    assert filename not in leftovers
    assert not [p for p in leftovers if p.endswith((".part", ".npy", ".json"))], leftovers


def test_mnist_format_downloads_once_converts_and_memory_maps(server, monkeypatch, tmp_path):
    arrays, files = _mnist_files(np.random.default_rng(0))
    _register(monkeypatch, server, "tiny_mnist", files, _mnist_reader())
    train, test = datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    assert sorted(server.downloads()) == sorted(f"/tiny_mnist/{f}" for f in files)
    for split, data in (("train", train), ("test", test)):
        np.testing.assert_array_equal(data.x, arrays[f"x_{split}"][..., None])  # NHWC, C=1
        np.testing.assert_array_equal(data.y, arrays[f"y_{split}"])
        assert data.x.dtype == np.uint8 and data.y.dtype == np.int32
        assert isinstance(data.x, np.memmap) and isinstance(data.y, np.memmap)
        assert data.task == "multiclass" and data.n_classes == 10 and data.name == "tiny_mnist"
    assert (tmp_path / "tiny_mnist" / "x_train.npy").exists()

    again = datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    assert len(server.downloads()) == len(files)  # nothing downloaded the second time
    np.testing.assert_array_equal(again.train.x, train.x)

    (tmp_path / "tiny_mnist" / "x_train.npy").unlink()  # conversion redone from the raw files
    redone = datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    assert len(server.downloads()) == len(files)
    np.testing.assert_array_equal(redone.train.x, arrays["x_train"][..., None])


def test_cifar10_and_cifar100_binary_archives(server, monkeypatch, tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (14, 32, 32, 3), dtype=np.uint8)  # 5 batches of 2, test 4
    labels = rng.integers(0, 10, 14)
    names = [f"class{i}" for i in range(10)]
    members = {
        f"cifar-10-batches-bin/data_batch_{i + 1}.bin": _cifar_bytes(
            images[2 * i : 2 * i + 2], [[c] for c in labels[2 * i : 2 * i + 2]]
        )
        for i in range(5)
    }
    members["cifar-10-batches-bin/test_batch.bin"] = _cifar_bytes(
        images[10:], [[c] for c in labels[10:]]
    )
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(names) + "\n\n").encode()
    files = {"cifar-10-binary.tar.gz": _tar_gz(members)}
    _register(monkeypatch, server, "tiny_cifar10", files, formats.read_cifar10)
    train, test = datasets.load("tiny_cifar10", data_dir=tmp_path, quiet=True)
    np.testing.assert_array_equal(train.x, images[:10])
    np.testing.assert_array_equal(test.x, images[10:])
    np.testing.assert_array_equal(train.y, labels[:10])
    np.testing.assert_array_equal(test.y, labels[10:])
    assert train.class_names == tuple(names) and isinstance(train.x, np.memmap)

    coarse, fine = rng.integers(0, 20, 14), rng.integers(0, 100, 14)
    pairs = [[c, f] for c, f in zip(coarse, fine, strict=True)]
    members = {
        "./cifar-100-binary/train.bin": _cifar_bytes(images[:10], pairs[:10]),  # "./" too
        "./cifar-100-binary/test.bin": _cifar_bytes(images[10:], pairs[10:]),
        "./cifar-100-binary/fine_label_names.txt": "\n".join(f"f{i}" for i in range(100)).encode(),
    }
    files = {"cifar-100-binary.tar.gz": _tar_gz(members)}
    _register(monkeypatch, server, "tiny_cifar100", files, formats.read_cifar100)
    train, test = datasets.load("tiny_cifar100", data_dir=tmp_path, quiet=True)
    np.testing.assert_array_equal(train.x, images[:10])
    np.testing.assert_array_equal(train.y, fine[:10])  # the fine label, not the coarse one
    np.testing.assert_array_equal(test.y, fine[10:])
    assert train.n_classes == 100


def test_data_dir_from_environment_and_default(server, monkeypatch, tmp_path):
    _, files = _mnist_files(np.random.default_rng(2))
    _register(monkeypatch, server, "tiny_mnist", files, _mnist_reader())
    monkeypatch.setenv("JAXNET_DATA_DIR", str(tmp_path / "from_env"))
    train, _ = datasets.load("tiny_mnist", quiet=True)
    assert (tmp_path / "from_env" / "tiny_mnist" / "train-images-idx3-ubyte.gz").exists()
    assert str(train.x.filename).startswith(str(tmp_path / "from_env"))
    monkeypatch.delenv("JAXNET_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "jaxnet" / "datasets"
    assert datasets.cache_dir(tmp_path / "given") == tmp_path / "given"


def test_corrupted_download_is_discarded_with_both_hashes_named(server, monkeypatch, tmp_path):
    _, files = _mnist_files(np.random.default_rng(3))
    pinned = "0" * 64
    _register(
        monkeypatch, server, "tiny_mnist", files, _mnist_reader(),
        sha256={"train-labels-idx1-ubyte.gz": pinned},
    )  # fmt: skip
    with pytest.raises(datasets.ChecksumError) as caught:
        datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    message = str(caught.value)
    assert "train-labels-idx1-ubyte.gz" in message and pinned in message
    assert _sha(files["train-labels-idx1-ubyte.gz"]) in message
    assert isinstance(caught.value, DataError)
    _assert_nothing_cached(tmp_path / "tiny_mnist", "train-labels-idx1-ubyte.gz")


def test_interrupted_transfer_leaves_no_cached_file(server, monkeypatch, tmp_path):
    _, files = _mnist_files(np.random.default_rng(4))
    name = "tiny_mnist"
    _register(
        monkeypatch, server, name, files, _mnist_reader(), mirrors=[f"{server.url}/cut/{name}/"]
    )
    size = len(files["train-images-idx3-ubyte.gz"])  # the first file; the server sends half
    with pytest.raises(datasets.DownloadError, match=f"interrupted after {size // 2} of {size} "):
        datasets.load(name, data_dir=tmp_path, quiet=True)
    assert server.downloads()[0].startswith("/cut/")
    _assert_nothing_cached(tmp_path / name, "train-images-idx3-ubyte.gz")


def test_offline_error_names_urls_and_paths_then_files_placed_by_hand_load(
    server, monkeypatch, tmp_path, closed_url
):
    arrays, files = _mnist_files(np.random.default_rng(5))
    _register(monkeypatch, server, "tiny_mnist", files, _mnist_reader(), mirrors=[closed_url])
    with pytest.raises(datasets.DownloadError) as caught:
        datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    error = caught.value
    assert isinstance(error, JaxnetError) and isinstance(error, OSError)
    for filename in files:  # every missing file: its URL and where to put it
        assert closed_url + filename in str(error)
        assert str(tmp_path / "tiny_mnist" / filename) in str(error)
    _assert_nothing_cached(tmp_path / "tiny_mnist", "train-images-idx3-ubyte.gz")

    for filename, data in files.items():  # the user places the files as told
        (tmp_path / "tiny_mnist" / filename).write_bytes(data)
    train, _ = datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    np.testing.assert_array_equal(train.y, arrays["y_train"])
    assert server.downloads() == []


def test_concurrent_loads_agree(server, monkeypatch, tmp_path):
    """Processes of one job may all call load at once: each downloads to its own temporary file
    and renames atomically, so every caller gets the complete data."""
    arrays, files = _mnist_files(np.random.default_rng(9))
    _register(monkeypatch, server, "tiny_mnist", files, _mnist_reader())
    results, errors = [], []

    def worker():
        try:
            results.append(datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == 4
    for train, test in results:
        np.testing.assert_array_equal(train.x[..., 0], arrays["x_train"])
        np.testing.assert_array_equal(test.y, arrays["y_test"])
    assert not [p for p in (tmp_path / "tiny_mnist").iterdir() if p.name.endswith(".part")]


def test_second_mirror_used_when_first_is_unreachable(server, monkeypatch, tmp_path, closed_url):
    arrays, files = _mnist_files(np.random.default_rng(6))
    mirrors = [closed_url, f"{server.url}/tiny_mnist/"]
    _register(monkeypatch, server, "tiny_mnist", files, _mnist_reader(), mirrors=mirrors)
    _, test = datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    np.testing.assert_array_equal(test.x[..., 0], arrays["x_test"])


def test_wrong_file_placed_by_hand_is_moved_aside(server, monkeypatch, tmp_path):
    _, files = _mnist_files(np.random.default_rng(7))
    _register(monkeypatch, server, "tiny_mnist", files, _mnist_reader())
    folder = tmp_path / "tiny_mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not the file")
    with pytest.raises(datasets.ChecksumError, match="moved aside") as caught:
        datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    assert _sha(b"not the file") in str(caught.value)
    assert not (folder / "t10k-images-idx3-ubyte.gz").exists()
    assert (folder / "t10k-images-idx3-ubyte.gz.corrupt").read_bytes() == b"not the file"
    datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)  # downloads it afresh
    assert "/tiny_mnist/t10k-images-idx3-ubyte.gz" in server.downloads()


def test_progress_lines_without_tqdm_and_quiet(server, monkeypatch, tmp_path, capsys):
    _, files = _mnist_files(np.random.default_rng(8))
    _register(monkeypatch, server, "tiny_mnist", files, _mnist_reader())
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    datasets.load("tiny_mnist", data_dir=tmp_path / "a")
    err = capsys.readouterr().err
    assert f"downloading {server.url}/tiny_mnist/train-images-idx3-ubyte.gz" in err
    assert "train-images-idx3-ubyte.gz: 100%" in err
    datasets.load("tiny_mnist", data_dir=tmp_path / "b", quiet=True)
    assert capsys.readouterr().err == ""


def test_registry_pins_are_well_formed():
    assert {"mnist", "fashion_mnist", "kmnist", "cifar10", "cifar100"} <= set(datasets.REGISTRY)
    for name, source in datasets.REGISTRY.items():
        assert source.files, name
        for remote in source.files:
            assert re.fullmatch(r"[0-9a-f]{64}", remote.sha256), (name, remote.filename)
            assert remote.size > 0 and remote.urls
            assert all(
                re.match(r"https?://", u) and u.endswith(remote.filename) for u in remote.urls
            )


def test_bundled_sets_by_name_and_unknown_names():
    train, test = datasets.load("digits")
    whole = datasets.load_dataset("digits")
    (x_train, y_train), (x_test, y_test) = datasets.train_test_split(whole.x, whole.y, 0.2, seed=0)
    np.testing.assert_array_equal(train.x, x_train)
    np.testing.assert_array_equal(test.y, y_test)
    assert len(train.x) + len(test.x) == 1797 and train.class_names == whole.class_names
    with pytest.raises(ConfigError, match="did you mean 'fashion_mnist'"):
        datasets.load("fashion-mnist")


def test_idx_reader_rejects_malformed_files():
    good = bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + b"abc"
    np.testing.assert_array_equal(formats.read_idx(good, "f"), np.frombuffer(b"abc", np.uint8))
    with pytest.raises(DataError, match="not an IDX file"):
        formats.read_idx(b"\x01\x02\x08\x01", "f")
    with pytest.raises(DataError, match="expected 0x08"):
        formats.read_idx(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 3) + b"abc", "f")
    with pytest.raises(DataError, match=r"shape \(4,\)"):
        formats.read_idx(bytes([0, 0, 8, 1]) + struct.pack(">I", 4) + b"abc", "f")


def test_listing_shows_paths_hashes_and_cache_state(server, monkeypatch, tmp_path, capsys):
    from jaxnet.datasets.__main__ import main

    _, files = _mnist_files(np.random.default_rng(10))
    source = _register(monkeypatch, server, "tiny_mnist", files, _mnist_reader())
    main([str(tmp_path)])
    before = capsys.readouterr().out
    assert "tiny_mnist: 4 file(s)" in before and "not downloaded" in before
    for remote in source.files:
        assert remote.sha256 in before and str(tmp_path / "tiny_mnist" / remote.filename) in before
    datasets.load("tiny_mnist", data_dir=tmp_path, quiet=True)
    main([str(tmp_path)])
    after = capsys.readouterr().out
    assert re.search(r"tiny_mnist: 4 file\(s\), [0-9.]+ MB, ready", after)
    assert server.downloads() == [f"/tiny_mnist/{f}" for f in files]  # the listing fetched nothing
