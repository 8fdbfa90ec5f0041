"""Files with a pinned SHA-256, downloaded once into a cache folder, atomically.

A download goes to a temporary file in the destination folder (:func:`jaxnet.atomic.atomic_file`),
its SHA-256 is computed while it streams, and only a file whose hash matches is renamed to its
final name: an interrupted, truncated or corrupted transfer never becomes the cached file, and a
full disk raises :class:`~jaxnet.errors.WriteError` naming the file and leaves no part of it.
Several processes may download the same file at once; each writes its own temporary file and the
renames are atomic.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from jaxnet.atomic import atomic_file, write_error
from jaxnet.errors import DataError, JaxnetError, WriteError

DATA_DIR_ENV = "JAXNET_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/jaxnet/datasets")
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0


class DownloadError(JaxnetError, OSError):
    """A file could not be downloaded (offline, unreachable); says where to place it by hand."""


class ChecksumError(DataError):
    """A file's SHA-256 is not the pinned one; the file was removed or moved aside, never used."""


class Remote(NamedTuple):
    """One file to download: its name in the cache, pinned SHA-256 and size, and mirror URLs."""

    filename: str
    sha256: str  # 64 lowercase hex digits
    size: int  # bytes
    urls: tuple[str, ...]  # tried in order; every one must serve the same bytes


def cache_dir(data_dir=None) -> Path:
    """``data_dir`` if given, else ``$JAXNET_DATA_DIR``, else ``~/.cache/jaxnet/datasets``."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def sha256_file(path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes:,} bytes"


@contextlib.contextmanager
def _progress(label: str, total: int, quiet: bool):
    """Yield ``advance(n_bytes)``: a tqdm bar if tqdm is installed, else a line every 10 %."""
    if quiet:
        yield lambda n: None
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=label, file=sys.stderr)
        with bar:
            yield bar.update
        return
    state = {"done": 0, "tenths": 0}

    def advance(n: int) -> None:
        state["done"] += n
        tenths = min(10, state["done"] * 10 // total) if total else 0
        if tenths > state["tenths"]:
            state["tenths"] = tenths
            print(f"  {label}: {10 * tenths}% of {_size(total)}", file=sys.stderr, flush=True)

    yield advance


def _download(url: str, remote: Remote, path: Path, quiet: bool, owner: tuple) -> None:
    if not quiet:
        print(f"jaxnet: downloading {url} to {path}", file=sys.stderr, flush=True)
    digest = hashlib.sha256()
    with (
        atomic_file(path, suffix=".part", owner=owner) as out,
        urllib.request.urlopen(url, timeout=TIMEOUT_S) as response,
    ):
        announced = response.headers.get("Content-Length")
        total, received = int(announced or remote.size), 0
        with _progress(remote.filename, total, quiet) as advance:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                advance(len(chunk))
        if announced is not None and received != total:  # http.client does not raise for this
            raise ConnectionError(f"transfer interrupted after {received} of {total} bytes")
        actual = digest.hexdigest()
        if actual != remote.sha256:  # raising here deletes the temporary file
            raise ChecksumError(
                f"{url} sent {remote.filename} with SHA-256 {actual}, but the pinned SHA-256 is "
                f"{remote.sha256}; the download was discarded and nothing was cached",
                owner,
            )


def _check_cached(path: Path, remote: Remote, owner: tuple) -> None:
    actual = sha256_file(path)
    if actual != remote.sha256:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        raise ChecksumError(
            f"{path} has SHA-256 {actual}, but the pinned SHA-256 of {remote.filename} is "
            f"{remote.sha256} (a truncated file or another version); it was moved aside to "
            f"{aside} and not used. Load again to download it afresh",
            owner,
        )


def fetch_all(remotes, folder: Path, *, quiet: bool = False, owner: tuple = ()) -> dict[str, Path]:
    """Make sure every :class:`Remote` is in ``folder`` with its pinned SHA-256.

    Files already there are checked (a mismatch is moved aside to ``<name>.corrupt`` and raises
    :class:`ChecksumError`); missing ones are downloaded from their mirrors in order. Returns
    ``{filename: path}``. Raises :class:`DownloadError` when a file cannot be downloaded from any
    mirror, listing every missing file with its URL and the exact path to place it by hand.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(folder, error, owner) from None
    paths = {}
    for remote in remotes:
        path = folder / remote.filename
        if path.exists():
            _check_cached(path, remote, owner)
            paths[remote.filename] = path
            continue
        failures = []
        for url in remote.urls:
            try:
                _download(url, remote, path, quiet, owner)
                break
            except WriteError:  # this machine's disk, not the mirror: another mirror won't help
                raise
            except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                failures.append(f"  {url}: {type(error).__name__}: {reason}")
        else:
            missing = [r for r in remotes if not (folder / r.filename).exists()]
            by_hand = [
                f"  {r.urls[0]} ({_size(r.size)}, SHA-256 {r.sha256})\n    -> {folder / r.filename}"
                for r in missing
            ]
            raise DownloadError(
                f"could not download {remote.filename}:\n"
                + "\n".join(failures)
                + "\nWithout network access, download the file(s) below on another machine and "
                "place them at the path(s) shown; their SHA-256 is checked on the next load:\n"
                + "\n".join(by_hand),
                owner,
            )
        paths[remote.filename] = path
    return paths
