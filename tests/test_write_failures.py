"""A write that fails loses nothing: the previous file stays intact and loadable, and the error is
a ``WriteError`` naming the path and the operating system's reason.

The real failure: a child process limits the size of the files it may write
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored, so an oversized write fails with ``EFBIG`` as on a
full disk), saves a small checkpoint, model, export and download that fit, then larger ones that
do not. This process (no limit) then loads what is on disk. In-process tests inject ``ENOSPC``
and ``EIO`` into the one write path (``jaxnet.atomic``).
"""

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

import jaxnet
from jaxnet import atomic, checkpoint
from jaxnet.errors import JaxnetError, WriteError

ROOT = Path(jaxnet.__file__).resolve().parent.parent
LIMIT = 64 * 1024  # bytes a file may hold in the child; the small artefacts are a few KiB
SMALL, BIG = 2, 8192  # hidden width: 4 * 8192 * 4 bytes of weights alone exceed LIMIT
EFBIG = f"{os.strerror(errno.EFBIG)} (EFBIG)"


def model(width):
    return jaxnet.serial(jaxnet.Dense(width), jaxnet.Dense(2), name="mlp")


def weights(width):
    """Params and state of ``model(width)``, filled with fixed numbers (the same in every
    process, whatever its PRNG settings)."""
    params, state = jax.eval_shape(lambda: jaxnet.init_model(model(width), jax.random.key(0), (4,)))
    return jax.tree.map(lambda a: np.linspace(-1, 1, a.size, dtype=a.dtype).reshape(a.shape),
                        (params, state))  # fmt: skip


CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    import jax
    import numpy as np
    import jaxnet
    from jaxnet import checkpoint
    from jaxnet.datasets.download import Remote, fetch_all

    root, limit, small, big = Path(sys.argv[1]), *map(int, sys.argv[2:5])
    remotes = json.loads(sys.argv[5])

    def model(width):
        return jaxnet.serial(jaxnet.Dense(width), jaxnet.Dense(2), name="mlp")

    def weights(width):  # as in the test module
        params, state = jax.eval_shape(
            lambda: jaxnet.init_model(model(width), jax.random.key(0), (4,)))
        return jax.tree.map(lambda a: np.linspace(-1, 1, a.size, dtype=a.dtype).reshape(a.shape),
                            (params, state))

    (p_small, s_small), (p_big, s_big) = weights(small), weights(big)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    manager = checkpoint.CheckpointManager(root / "checkpoints")

    def save_model(params, state, width, overwrite):
        jaxnet.save_model(root / "model", model(width), params, state=state, input_shape=(4,),
                          overwrite=overwrite)

    def export(params, state, width):
        jaxnet.export(model(width), params, state, (4,), root / "model.stablehlo",
                      platforms=("cpu",))

    def download(remote):
        fetch_all([Remote(**remote)], root / "cache", quiet=True, owner=("datasets", "tiny"))

    cases = {
        "checkpoint": (lambda: manager.save({"params": p_small}, epoch=1),
                       lambda: manager.save({"params": p_big}, epoch=2)),
        "same_name": (lambda: checkpoint.save(root / "same", "w", {"params": p_small}),
                      lambda: checkpoint.save(root / "same", "w", {"params": p_big})),
        "save_model": (lambda: save_model(p_small, s_small, small, False),
                       lambda: save_model(p_big, s_big, big, True)),
        "export": (lambda: export(p_small, s_small, small),
                   lambda: export(p_big, s_big, big)),
        "download": (lambda: download(remotes["small"]), lambda: download(remotes["big"])),
    }
    report = {}
    for name, (fits, too_large) in cases.items():
        fits()
        try:
            too_large()
            report[name] = None
        except Exception as error:
            report[name] = {"type": type(error).__name__, "message": str(error),
                            "errno": getattr(error, "errno", None),
                            "os_error": isinstance(error, OSError),
                            "jaxnet_error": isinstance(error, jaxnet.errors.JaxnetError)}
    print(json.dumps(report))
    """
)


def _remote(path: Path, filename: str) -> dict:
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    return {"filename": filename, "sha256": sha256, "size": len(data), "urls": [path.as_uri()]}


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """The child's report and the folder it wrote to."""
    root = tmp_path_factory.mktemp("limited")
    rng = np.random.default_rng(0)
    (root / "small.bin").write_bytes(rng.bytes(1000))
    (root / "big.bin").write_bytes(rng.bytes(4 * LIMIT))
    remotes = {"small": _remote(root / "small.bin", "small.bin"),
               "big": _remote(root / "big.bin", "big.bin")}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION", "JAXNET"))}
    env |= {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-c", CHILD, str(root), str(LIMIT), str(SMALL), str(BIG),
               json.dumps(remotes)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), root


def _assert_write_error(report, path: Path, kept="no file was created"):
    assert report is not None, "the oversized write did not fail"
    assert report["type"] == "WriteError" and report["os_error"] and report["jaxnet_error"]
    assert report["errno"] == errno.EFBIG
    assert f"cannot write {path}: {EFBIG}; {kept}" in report["message"], report["message"]


def _no_leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_checkpoint_write_failure_keeps_the_previous_checkpoint(limited):
    report, root = limited
    folder = root / "checkpoints"
    _assert_write_error(report["checkpoint"], folder / "ckpt-000002.safetensors")
    assert report["checkpoint"]["message"].startswith("checkpoint: ")
    small = {"params": weights(SMALL)[0]}
    restored = checkpoint.CheckpointManager(folder).restore_latest(template=small)
    assert restored.epoch == 1
    chex.assert_trees_all_equal(restored.tree, small)
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt-000001.json",
                                                        "ckpt-000001.safetensors"]  # fmt: skip


def test_a_checkpoint_saved_again_under_its_name_keeps_the_old_one(limited):
    report, root = limited
    _assert_write_error(report["same_name"], root / "same" / "w.safetensors", "the previous file")
    small = {"params": weights(SMALL)[0]}
    chex.assert_trees_all_equal(checkpoint.load(root / "same" / "w.json", small).tree, small)
    assert not _no_leftovers(root / "same")


def test_save_model_write_failure_keeps_the_previous_model(limited):
    report, root = limited
    _assert_write_error(
        report["save_model"], root / "model", f"the saved model at {root / 'model'}"
    )
    assert report["save_model"]["message"].startswith("save_model: ")
    assert report["save_model"]["message"].endswith("is unchanged")
    saved = jaxnet.load_model(root / "model")
    chex.assert_trees_all_equal((saved.params, saved.state), weights(SMALL))
    assert not _no_leftovers(root)  # no temporary folder, no half-written model


def test_export_write_failure_keeps_the_previous_export(limited):
    report, root = limited
    _assert_write_error(
        report["export"], root / "model.stablehlo", "the previous file is unchanged"
    )
    serve = jaxnet.load_exported(root / "model.stablehlo")
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    expected = jaxnet.predict(model(SMALL), *weights(SMALL), x)
    np.testing.assert_allclose(serve(x), expected, rtol=1e-6, atol=1e-6)


def test_download_write_failure_names_the_file_and_caches_nothing(limited):
    report, root = limited
    _assert_write_error(report["download"], root / "cache" / "big.bin")
    assert report["download"]["message"].startswith("datasets/tiny: ")  # not "could not download"
    assert sorted(p.name for p in (root / "cache").iterdir()) == ["small.bin"]
    assert (root / "cache" / "small.bin").read_bytes() == (root / "small.bin").read_bytes()


# ----------------------------------------------------------------------------- in this process


def _failing(call: str, code: int, after: int = 0):
    """``os.<call>`` that raises ``OSError(code)`` from its ``after``-th call on."""
    real, calls = getattr(os, call), []

    def fail(*args, **kwargs):
        calls.append(args)
        if len(calls) > after:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    return fail


@pytest.mark.parametrize("call, code", [("fsync", errno.ENOSPC), ("replace", errno.EIO)])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch,
                                                                      call, code):  # fmt: skip
    path = atomic.write_bytes(tmp_path / "a.bin", b"old")
    monkeypatch.setattr(os, call, _failing(call, code))
    with pytest.raises(WriteError) as caught:
        atomic.write_bytes(path, b"new" * 1000, owner=("export",))
    monkeypatch.undo()
    name = errno.errorcode[code]
    assert str(caught.value) == (
        f"export: cannot write {path}: {os.strerror(code)} ({name}); the previous file is unchanged"
    )
    error = caught.value
    assert isinstance(error, OSError) and isinstance(error, JaxnetError)
    assert (error.errno, error.filename) == (code, str(path))
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_write_files_replaces_none_when_a_later_one_fails(tmp_path, monkeypatch):
    first, second = tmp_path / "arrays.bin", tmp_path / "manifest.json"
    atomic.write_files([(first, b"old arrays"), (second, b"old manifest")])
    monkeypatch.setattr(os, "fsync", _failing("fsync", errno.ENOSPC, after=1))  # the second file
    with pytest.raises(WriteError, match=f"cannot write {second}: No space left on device"):
        atomic.write_files([(first, b"new arrays"), (second, b"new manifest")])
    monkeypatch.undo()
    assert (first.read_bytes(), second.read_bytes()) == (b"old arrays", b"old manifest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.bin", "manifest.json"]


def test_errors_of_the_writer_itself_pass_through_unchanged(tmp_path):
    path = tmp_path / "download.bin"
    for error in (ConnectionError("reset by peer"), KeyboardInterrupt()):
        with pytest.raises(type(error)) as caught, atomic.atomic_file(path) as handle:
            handle.write(b"part of it")
            raise error
        assert caught.value is error  # not turned into a WriteError
    assert not list(tmp_path.iterdir())


def test_a_file_where_the_folder_goes_is_a_write_error(tmp_path):
    path = tmp_path / "file" / "a.bin"
    (tmp_path / "file").write_bytes(b"")  # a file where the folder should be
    with pytest.raises(WriteError, match=f"cannot write {path}: File exists"):  # making the folder
        atomic.write_bytes(path, b"x")
    with pytest.raises(WriteError, match=f"cannot write {path}: Not a directory"):
        atomic.write_bytes(path, b"x", create_parents=False)


def test_a_cache_folder_that_cannot_be_made_is_a_write_error(tmp_path):
    from jaxnet.datasets.download import Remote, fetch_all

    (tmp_path / "file").write_bytes(b"")
    folder = tmp_path / "file" / "cache"
    remote = Remote("a.bin", "0" * 64, 1, ((tmp_path / "a.bin").as_uri(),))
    with pytest.raises(WriteError, match=f"^datasets/tiny: cannot write {folder}: Not a directory"):
        fetch_all([remote], folder, quiet=True, owner=("datasets", "tiny"))
