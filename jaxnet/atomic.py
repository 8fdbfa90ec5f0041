"""Atomic file writes: a reader sees the old file or the complete new one, never a part of one.

Every file jaxnet writes as an artefact (checkpoints, saved models, exports, downloaded and
converted data sets) goes through this module: the bytes go to a temporary file in the same
folder, are flushed and ``fsync``-ed, the temporary file is renamed over the final name
(``os.replace``, atomic on POSIX and Windows) and the folder is ``fsync``-ed. When the operating
system refuses a write (a full disk, ``ENOSPC``; a file-size limit, ``EFBIG``; an I/O error,
``EIO``), the temporary file is deleted, the file at the final name is left as it was, and a
:class:`~jaxnet.errors.WriteError` names the path and the system's reason.

>>> path = write_bytes("out/numbers.bin", b"\\x00\\x01")
>>> path.read_bytes()
b'\\x00\\x01'
>>> write_bytes("no/such/folder/a.bin", b"", create_parents=False)
Traceback (most recent call last):
...
jaxnet.errors.WriteError: write: cannot write no/such/folder/a.bin: No such file or directory (ENOENT); no file was created
"""  # noqa: E501

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from jaxnet.errors import WriteError


def fsync_directory(directory) -> None:
    """``fsync`` a folder so that a rename inside it survives a power cut (no-op where folders
    cannot be opened, e.g. on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_error(path, error: OSError, owner: tuple = ("write",), kept: str | None = None):
    """The :class:`~jaxnet.errors.WriteError` for ``error`` while writing ``path``: the path,
    ``os.strerror`` of its ``errno`` and the errno's name (``No space left on device
    (ENOSPC)``), then ``kept``: what is at ``path`` now (by default, the previous file
    unchanged, or no file)."""
    if kept is None:
        kept = "the previous file is unchanged" if Path(path).exists() else "no file was created"
    if isinstance(error, WriteError):
        cause, code = error.strerror, error.errno
    elif error.errno is not None:
        code = error.errno
        cause = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
    else:
        cause, code = str(error) or type(error).__name__, None
    result = WriteError(f"cannot write {path}: {cause}; {kept}", owner)
    result.errno, result.strerror, result.filename = code, cause, str(path)
    return result


class _Writer:
    """A binary file handle whose ``write`` turns an ``OSError`` into a :class:`WriteError`, so
    that a caller's own errors (a network error while downloading) pass through unchanged."""

    def __init__(self, handle, path: Path, owner: tuple):
        self._handle, self._path, self._owner = handle, path, owner

    def write(self, data) -> int:
        try:
            return self._handle.write(data)
        except OSError as error:
            raise write_error(self._path, error, self._owner) from None

    def tell(self) -> int:
        return self._handle.tell()


def _create(path: Path, suffix: str, owner: tuple, create_parents: bool):
    try:
        if create_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as error:
        raise write_error(path, error, owner) from None
    return os.fdopen(fd, "wb"), Path(temporary)


def _finish(handle, temporary: Path, path: Path, owner: tuple) -> None:
    """Flush, fsync and close ``handle`` (on ``temporary``); a failure deletes ``temporary``."""
    try:
        with handle:
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise write_error(path, error, owner) from None


@contextlib.contextmanager
def atomic_file(
    path, *, suffix: str = ".tmp", owner: tuple = ("write",), create_parents: bool = True
) -> Iterator[_Writer]:
    """A binary file to ``write`` to, renamed to ``path`` when the block ends without an error.

    On any error (the block's own, or the system's) the temporary file
    (``.<name>.<random><suffix>`` beside ``path``) is deleted and ``path`` is unchanged; the
    system's refusals are raised as :class:`~jaxnet.errors.WriteError`.
    """
    path = Path(path)
    handle, temporary = _create(path, suffix, owner, create_parents)
    try:
        yield _Writer(handle, path, owner)
    except BaseException:
        with contextlib.suppress(OSError):  # flushing the rest may fail too: the first error
            handle.close()
        temporary.unlink(missing_ok=True)
        raise
    _finish(handle, temporary, path, owner)
    _replace(temporary, path, owner)
    fsync_directory(path.parent)


def _replace(temporary: Path, path: Path, owner: tuple) -> None:
    try:
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise write_error(path, error, owner) from None


def write_bytes(
    path, data: bytes, *, owner: tuple = ("write",), create_parents: bool = True
) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`); return the path."""
    with atomic_file(path, owner=owner, create_parents=create_parents) as handle:
        handle.write(data)
    return Path(path)


def write_files(files: Sequence[tuple[Path, bytes]], *, owner: tuple = ("write",)) -> None:
    """Write several files: every one complete in its temporary file before the first is renamed,
    then renamed in order. A full disk while writing any of them replaces none; a crash during
    the renames leaves a prefix of them replaced (write the file that makes the set visible,
    e.g. a manifest, last)."""
    staged = []
    try:
        for path, data in files:
            path = Path(path)
            handle, temporary = _create(path, ".tmp", owner, True)
            staged.append((temporary, path))
            try:
                handle.write(data)
            except OSError as error:
                with contextlib.suppress(OSError):
                    handle.close()
                raise write_error(path, error, owner) from None
            _finish(handle, temporary, path, owner)
        for temporary, path in staged:
            _replace(temporary, path, owner)
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    for directory in {path.parent for _, path in staged}:
        fsync_directory(directory)
