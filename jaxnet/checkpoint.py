"""Checkpoints: a pytree's arrays in a safetensors file plus a JSON manifest; never pickle.

A checkpoint named ``ckpt-000005`` (5 = epochs completed) is two files in one directory:

- ``ckpt-000005.safetensors``: every array leaf, keyed by its pytree path
  (``"params/dense_0/w"``, ``"opt_state/0/mu/dense_0/w"``, ``"step"``, ``"key"``); PRNG keys are
  stored as their raw ``jax.random.key_data`` and re-wrapped on load.
- ``ckpt-000005.json``: the manifest — format version, jaxnet/jax versions, epoch, step, the
  array file's name, size and SHA-256, every path with its shape and dtype, the PRNG
  implementation of each key leaf, free JSON (history, metrics, what defines the run), and
  ``manifest_sha256``: the SHA-256 of all the rest (of its canonical JSON: sorted keys, no
  spaces), so the manifest is as safe as the arrays.

Writes are atomic (:mod:`jaxnet.atomic`): both files go to temporary files in the same directory
and are fsynced before either is renamed into place, the array file first and the manifest last,
then the directory is fsynced. A checkpoint without a manifest does not exist as far as readers are
concerned; a full disk or another write error replaces nothing and raises
:class:`~jaxnet.errors.WriteError` naming the file and the system's reason. A checkpoint whose
manifest is unreadable, altered (checksum mismatch) or inconsistent (a field of the wrong type, an
epoch that is not the one in its name), or whose array file is missing, truncated or altered, is
reported with a warning naming the file and skipped in favour of the previous intact one.

Restoring goes *into a template* (e.g. the freshly initialised ``TrainState``): the template gives
the tree structure — dicts, tuples, optimizer ``NamedTuple`` states — and every path, shape and
dtype must match, or :class:`CheckpointError` says which does not.

>>> from jaxnet import Dense, create_train_state, optim
>>> train_state = create_train_state(Dense(2), optim.adam(1e-3), (3,), jax.random.key(0))
>>> manager = CheckpointManager("runs/mlp", keep=3)
>>> path = manager.save(train_state, epoch=5, extra={"history": {"loss": [0.9, 0.5]}})
>>> restored = manager.restore_latest(template=train_state)   # None if there is no checkpoint
>>> restored.epoch, restored.manifest["extra"]["history"]
(5, {'loss': [0.9, 0.5]})
>>> type(restored.tree).__name__                              # the template's structure
'TrainState'
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.atomic import fsync_directory, write_files
from jaxnet.core import path_string
from jaxnet.errors import JaxnetError
from jaxnet.jsonable import dumps
from jaxnet.metrics import check_mode, direction
from jaxnet.version import __version__

FORMAT = "jaxnet-checkpoint"
FORMAT_VERSION = 2  # 2: the manifest carries its own checksum (1: only the arrays' one)
PREFIX = "ckpt-"
ARRAYS_SUFFIX = ".safetensors"
MANIFEST_SUFFIX = ".json"
_NAME = re.compile(rf"^{PREFIX}(\d+)(?:\+(\d+))?$")  # ckpt-EPOCHS or ckpt-EPOCHS+STEPS
# dtypes safetensors' NumPy API reads back as themselves; others (bfloat16) travel as raw bits.
_NATIVE = {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"}
_NATIVE |= {"float16", "float32", "float64"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(JaxnetError, ValueError):
    """A checkpoint does not fit the template, or no usable checkpoint exists where one must."""


class Restored(NamedTuple):
    """A restored checkpoint: the ``tree`` (template's structure), its ``epoch``, ``step``,
    the ``path`` of its manifest and the whole ``manifest`` dict."""

    tree: Any
    epoch: int
    step: int | None
    path: Path
    manifest: dict


# ----------------------------------------------------------------------------- paths and leaves


def _is_prng_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def flatten(tree) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """``tree`` -> (``{path: host array}``, ``{path: {"shape", "dtype"[, "prng_impl"]}}``).

    PRNG key leaves become their ``key_data`` (``uint32``), with ``prng_impl`` recorded.
    """
    arrays, specs = {}, {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = path_string(path)
        if name in arrays:
            raise CheckpointError(f"two leaves share the path {name!r}", ("checkpoint",))
        spec = {}
        if _is_prng_key(leaf):
            spec["prng_impl"] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        array = np.asarray(leaf, order="C")  # (ascontiguousarray would make scalars 1-d)
        spec |= {"shape": list(array.shape), "dtype": array.dtype.name}
        if array.dtype.name not in _NATIVE:  # e.g. bfloat16: store the bits
            array = array.view(f"uint{8 * array.dtype.itemsize}")
        arrays[name], specs[name] = array, spec
    return arrays, specs


def unflatten_into(template, arrays: dict[str, np.ndarray], specs: dict[str, dict], source=""):
    """Put ``arrays`` into ``template``'s structure by path, checking path, shape and dtype."""
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(template)
    wanted = [path_string(path) for path, _ in leaves_with_path]
    problems = []
    missing = [name for name in wanted if name not in arrays]
    extra = sorted(set(arrays) - set(wanted))
    if missing:
        problems.append(
            f"missing from the checkpoint: {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    if extra:
        problems.append(
            f"in the checkpoint but not the template: {extra[:5]}{' ...' if len(extra) > 5 else ''}"
        )
    new_leaves = []
    for name, (_, leaf) in zip(wanted, leaves_with_path, strict=True):
        if name not in arrays:
            continue
        spec = specs.get(name, {})
        array = arrays[name]
        if spec.get("dtype") and array.dtype.name != spec["dtype"]:
            array = array.view(jnp.dtype(spec["dtype"]))
        if _is_prng_key(leaf):
            impl = str(jax.random.key_impl(leaf))
            if spec.get("prng_impl") != impl:
                problems.append(
                    f"{name}: expected a {impl} PRNG key, "
                    f"got {spec.get('prng_impl') or array.dtype}"
                )
                continue
            expected_shape, expected_dtype = jax.random.key_data(leaf).shape, np.dtype("uint32")
        else:
            expected_shape = tuple(getattr(leaf, "shape", np.shape(leaf)))
            expected_dtype = np.dtype(getattr(leaf, "dtype", None) or jnp.result_type(leaf))
        if tuple(array.shape) != tuple(expected_shape) or array.dtype != expected_dtype:
            problems.append(
                f"{name}: expected {expected_dtype.name}{list(expected_shape)}, "
                f"got {array.dtype.name}{list(array.shape)}"
            )
            continue
        if _is_prng_key(leaf):
            new_leaves.append(jax.random.wrap_key_data(jnp.asarray(array), impl=spec["prng_impl"]))
        else:
            new_leaves.append(jnp.asarray(array))
    if problems:
        where = f" {source}" if source else ""
        raise CheckpointError(
            f"checkpoint{where} does not match the template: " + "; ".join(problems[:8]),
            ("checkpoint",),
        )
    return jax.tree_util.tree_unflatten(treedef, new_leaves)


# ----------------------------------------------------------------------------- checksums


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_checksum(manifest: dict) -> str:
    """SHA-256 of ``manifest`` without its ``manifest_sha256`` field, as canonical JSON (sorted
    keys, no spaces): the same for the dict written and the dict read back."""
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return _sha256(text.encode())


# ----------------------------------------------------------------------------- one checkpoint


def versions() -> dict:
    """``{"jaxnet": ..., "jax": ...}``: the versions every jaxnet artefact records."""
    return {"jaxnet": __version__, "jax": jax.__version__}


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "jaxnet checkpoints need the 'safetensors' package: pip install safetensors"
        ) from error
    return safetensors.numpy


def save(
    directory, name: str, tree, *, epoch: int | None = None, extra: dict | None = None
) -> Path:
    """Write ``tree`` as checkpoint ``name`` in ``directory``; return the manifest's path.

    ``extra`` is any JSON-serialisable dict (history, metrics, config) stored in the manifest.
    """
    directory = Path(directory)
    arrays, specs = flatten(tree)
    data = _safetensors().save(arrays) if arrays else b""
    arrays_name = name + ARRAYS_SUFFIX
    step = getattr(tree, "step", None)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "epoch": epoch,
        "step": None if step is None else int(step),
        "arrays_file": arrays_name,
        "arrays_bytes": len(data),
        "sha256": _sha256(data),
        "treedef": str(jax.tree_util.tree_structure(tree)),
        "arrays": specs,
        "extra": extra or {},
    }
    manifest = json.loads(dumps(manifest))  # the JSON values a reader gets back
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    manifest_path = directory / (name + MANIFEST_SUFFIX)
    text = dumps(manifest, indent=1).encode()
    # Both complete on disk before either replaces anything; the manifest is renamed last.
    write_files([(directory / arrays_name, data), (manifest_path, text)], owner=("checkpoint",))
    return manifest_path


def read_manifest(manifest_path) -> dict:
    """The manifest dict, checked against its own checksum and for the type of every field;
    :class:`CheckpointError` if it is unreadable, altered, inconsistent or not a jaxnet
    checkpoint."""
    manifest_path = Path(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(
            f"cannot read manifest {manifest_path}: {error}", ("checkpoint",)
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{manifest_path} is not a {FORMAT} manifest", ("checkpoint",))
    version = manifest.get("format_version")
    if not _is_int(version) or version < 1 or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{manifest_path} has format version {version!r}; this jaxnet reads 1 to "
            f"{FORMAT_VERSION}",
            ("checkpoint",),
        )
    if "manifest_sha256" in manifest or version >= 2:
        if manifest.get("manifest_sha256") != manifest_checksum(manifest):
            raise CheckpointError(
                f"{manifest_path} is corrupted: its content does not match its manifest_sha256",
                ("checkpoint",),
            )
    problem = _manifest_problem(manifest, manifest_path.name[: -len(MANIFEST_SUFFIX)])
    if problem:
        raise CheckpointError(f"{manifest_path} is inconsistent: {problem}", ("checkpoint",))
    return manifest


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _manifest_problem(manifest: dict, name: str) -> str | None:
    """What is wrong with the fields of a manifest named ``name``, or ``None``."""
    for field in ("epoch", "step"):
        value = manifest.get(field)
        if value is not None and not (_is_int(value) and value >= 0):
            return f"{field} is {value!r}, not a non-negative integer or null"
    if manifest.get("arrays_file") != name + ARRAYS_SUFFIX:
        return f"arrays_file is {manifest.get('arrays_file')!r}, not {name + ARRAYS_SUFFIX!r}"
    if not (_is_int(manifest.get("arrays_bytes")) and manifest["arrays_bytes"] >= 0):
        return f"arrays_bytes is {manifest.get('arrays_bytes')!r}"
    if not isinstance(manifest.get("sha256"), str) or not _HEX64.match(manifest["sha256"]):
        return f"sha256 is {manifest.get('sha256')!r}, not 64 hexadecimal digits"
    specs = manifest.get("arrays")
    if not isinstance(specs, dict):
        return "arrays is not a mapping"
    for path, spec in specs.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
            return f"the shape of {path} is {shape!r}"
        if not isinstance(spec.get("dtype"), str):
            return f"the dtype of {path} is {spec.get('dtype')!r}"
    if not isinstance(manifest.get("extra"), dict):
        return "extra is not a mapping"
    return None


def read_arrays(manifest_path, manifest: dict | None = None) -> dict[str, np.ndarray]:
    """The checkpoint's arrays by path, after checking size and SHA-256 against the manifest."""
    manifest_path = Path(manifest_path)
    manifest = manifest or read_manifest(manifest_path)
    arrays_path = manifest_path.parent / manifest["arrays_file"]
    try:
        data = arrays_path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read {arrays_path}: {error}", ("checkpoint",)) from None
    if len(data) != manifest["arrays_bytes"] or _sha256(data) != manifest["sha256"]:
        raise CheckpointError(
            f"{arrays_path} is corrupted: {len(data)} bytes with SHA-256 "
            f"{_sha256(data)[:12]}..., the manifest expects {manifest['arrays_bytes']} bytes "
            f"with {manifest['sha256'][:12]}...",
            ("checkpoint",),
        )
    try:
        arrays = _safetensors().load(data) if data else {}
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"cannot decode {arrays_path}: {error}", ("checkpoint",)) from None
    specs = manifest["arrays"]
    if set(arrays) != set(specs):
        raise CheckpointError(
            f"{arrays_path} holds other arrays than its manifest lists", ("checkpoint",)
        )
    return arrays


def load(manifest_path, template) -> Restored:
    """Restore the checkpoint whose manifest is ``manifest_path`` into ``template``'s structure."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    arrays = read_arrays(manifest_path, manifest)
    tree = unflatten_into(template, arrays, manifest["arrays"], str(manifest_path))
    return Restored(tree, manifest.get("epoch"), manifest.get("step"), manifest_path, manifest)


# ----------------------------------------------------------------------------- a directory of them


class CheckpointManager:
    """Numbered checkpoints in one directory: keep the newest ``keep`` (plus the best one).

    Args:
      directory: where the checkpoints live (created if needed).
      keep: how many of the newest checkpoints to keep (older ones are deleted after each save).
      monitor: a metric name (e.g. ``"val_loss"``); the checkpoint with its best value is kept too.
      mode: ``"min"``, ``"max"`` or ``"auto"`` (by the name, :func:`jaxnet.metrics.direction`):
        which value of ``monitor`` is best.

    A manager deletes only checkpoints (manifest and array file) older than the ones it keeps,
    and leftovers of interrupted writes (temporary files, an array file without its manifest) of
    a checkpoint it has itself written again since; any other file stays.
    """

    def __init__(self, directory, keep: int = 3, monitor: str | None = None, mode: str = "auto"):
        if keep < 1:
            raise CheckpointError(f"keep must be at least 1, got {keep}", ("CheckpointManager",))
        if mode == "auto":
            mode = direction(monitor) if monitor is not None else "min"
        check_mode(mode, "CheckpointManager")
        self.directory, self.keep, self.monitor, self.mode = Path(directory), keep, monitor, mode
        self.written: set[str] = set()  # names of the checkpoints this manager has saved

    def _numbered(self, suffix: str) -> list[Path]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob(PREFIX + "*" + suffix):
            match = _NAME.match(path.name[: -len(suffix)])
            if match:
                found.append(((int(match.group(1)), int(match.group(2) or 0)), path))
        return [path for _, path in sorted(found)]

    def manifests(self) -> list[Path]:
        """Manifest paths of the checkpoints present, oldest first (by number)."""
        return self._numbered(MANIFEST_SUFFIX)

    def orphans(self) -> list[Path]:
        """Array files without a manifest (a write interrupted between the two, or manifests
        deleted by hand): not checkpoints, and never deleted unless this manager wrote them."""
        live = {p.with_suffix(ARRAYS_SUFFIX) for p in self.manifests()}
        return [path for path in self._numbered(ARRAYS_SUFFIX) if path not in live]

    def save(
        self,
        tree,
        epoch: int,
        *,
        metrics: dict | None = None,
        extra: dict | None = None,
        steps_into_epoch: int = 0,
    ) -> Path:
        """Write checkpoint ``epoch`` (epochs completed; ``ckpt-000005``), or one taken
        ``steps_into_epoch`` steps into the next epoch (``ckpt-000005+000120``), then delete the
        ones no longer kept. In a run of several processes only process 0 writes (every process
        holds the same replicated state)."""
        name = f"{PREFIX}{epoch:06d}" + (f"+{steps_into_epoch:06d}" if steps_into_epoch else "")
        if jax.process_index() != 0:
            return self.directory / (name + MANIFEST_SUFFIX)
        extra = dict(extra or {})
        if metrics is not None:
            extra["metrics"] = {k: float(v) for k, v in metrics.items()}
        self.written.add(name)
        path = save(self.directory, name, tree, epoch=epoch, extra=extra)
        self._prune()
        return path

    def _metric(self, manifest_path) -> float | None:
        try:
            value = read_manifest(manifest_path)["extra"].get("metrics", {}).get(self.monitor)
        except CheckpointError:
            return None
        return None if not isinstance(value, int | float) or not np.isfinite(value) else value

    def best(self) -> Path | None:
        """The manifest with the best ``monitor`` value (``None`` without a monitor)."""
        if self.monitor is None:
            return None
        scored = [(self._metric(p), p) for p in self.manifests()]
        scored = [(v, p) for v, p in scored if v is not None]
        if not scored:
            return None
        pick = min if self.mode == "min" else max
        return pick(scored, key=lambda item: item[0])[1]

    def _prune(self) -> None:
        manifests = self.manifests()
        kept = set(manifests[-self.keep :])
        best = self.best()
        if best is not None:
            kept.add(best)
        for manifest_path in manifests:
            if manifest_path in kept:
                continue
            arrays_path = manifest_path.with_suffix(ARRAYS_SUFFIX)
            manifest_path.unlink(missing_ok=True)  # manifest first: never a manifest without arrays
            arrays_path.unlink(missing_ok=True)
        # Leftovers of interrupted writes of a checkpoint this manager has written since.
        for path in self.directory.glob(f".{PREFIX}*.tmp"):
            if path.name[1:].partition(".")[0] in self.written:
                path.unlink(missing_ok=True)
        for path in self.orphans():
            if path.name[: -len(ARRAYS_SUFFIX)] in self.written:
                path.unlink(missing_ok=True)
        fsync_directory(self.directory)

    def read(self, manifest_path, validate: Callable[[dict], None] | None = None):
        """``(manifest, arrays)`` of one checkpoint, every check passed: the manifest's own
        (:func:`read_manifest`), its epoch against its file name, ``validate(manifest)`` (raises
        :class:`CheckpointError` to reject it), and the arrays' size and SHA-256."""
        manifest_path = Path(manifest_path)
        manifest = read_manifest(manifest_path)
        number = int(_NAME.match(manifest_path.name[: -len(MANIFEST_SUFFIX)]).group(1))
        if manifest["epoch"] != number:
            raise CheckpointError(
                f"{manifest_path} is inconsistent: epoch {manifest['epoch']} in a file named "
                f"for epoch {number}",
                ("checkpoint",),
            )
        if validate is not None:
            validate(manifest)
        return manifest, read_arrays(manifest_path, manifest)

    def latest_intact(self, validate: Callable[[dict], None] | None = None):
        """``(manifest_path, manifest, arrays)`` of the newest checkpoint that reads back intact.

        Checkpoints with an unreadable, altered or inconsistent manifest (also: one that
        ``validate(manifest)`` rejects with a :class:`CheckpointError`), or a corrupted or missing
        array file, are skipped with a :class:`RuntimeWarning` naming the file. Returns ``None``
        when there are no checkpoints; raises :class:`CheckpointError` when there are some but
        none is usable.
        """
        manifests = self.manifests()
        for manifest_path in reversed(manifests):
            try:
                return (manifest_path, *self.read(manifest_path, validate))
            except CheckpointError as error:
                warnings.warn(
                    f"skipping checkpoint {manifest_path.name}: {error.detail}; "
                    "trying the previous one",
                    RuntimeWarning,
                    stacklevel=3,
                )
        if manifests:
            raise CheckpointError(
                f"none of the {len(manifests)} checkpoints in {self.directory} is readable",
                ("checkpoint",),
            )
        return None

    def restore_latest(
        self, template, validate: Callable[[dict], None] | None = None
    ) -> Restored | None:
        """The newest checkpoint that reads back intact (:meth:`latest_intact`), restored into
        ``template``; :class:`CheckpointError` if it does not match ``template``."""
        found = self.latest_intact(validate)
        return None if found is None else restore_into(template, *found)


def restore_into(template, manifest_path, manifest: dict, arrays: dict) -> Restored:
    """A read checkpoint (:meth:`CheckpointManager.latest_intact`) as a :class:`Restored` in
    ``template``'s structure."""
    tree = unflatten_into(template, arrays, manifest["arrays"], str(manifest_path))
    return Restored(tree, manifest["epoch"], manifest["step"], Path(manifest_path), manifest)
