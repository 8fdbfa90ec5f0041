"""Compile-time helpers: a persistent compilation cache, the programs this process compiled
(kept by what they compile, so a second ``fit`` of the same architecture and shapes compiles
nothing), fast compiles for run-once code, compiling on a worker thread while the caller goes on,
and keeping Python's cycle collector off the import-time objects while a training call starts
up."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax

DEFAULT_CACHE = Path(os.environ.get("JAXNET_CACHE_DIR", Path.home() / ".cache" / "jaxnet" / "xla"))


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path:
    """Keep compiled XLA programs on disk so a second run of the same script skips compiling.

    Every program is cached (no minimum compile time). The CLI and the demo turn this on; library
    code never does it behind your back. Returns the cache directory.
    """
    path = Path(directory) if directory is not None else DEFAULT_CACHE
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def run_once_options() -> dict:
    """XLA options for a program that runs once (initialisation): compile fast, not run fast.

    On the CPU, LLVM's optimisation of the initializers' random-bit loops takes seconds (several
    per Dense layer on a 2-core machine) and saves microseconds; ``-O0`` cuts that to a fraction,
    and XLA's elemental emitters instead of its MLIR fusion emitters (where this XLA has the
    choice) cut what is left by another ~40% (a 64-100-100-10 MLP's initialisation: 0.27 ->
    0.17 s) with the same bits. Other backends keep their defaults.
    """
    if jax.default_backend() != "cpu":
        return {}
    return {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
            **elemental_emitters()}  # fmt: skip


@functools.cache
def elemental_emitters() -> dict:
    """``{"xla_cpu_use_fusion_emitters": False}`` where this XLA:CPU knows the option, else
    ``{}`` (asked once: a trivial program compiled with it)."""
    option = {"xla_cpu_use_fusion_emitters": False}
    try:
        jax.jit(lambda: 0).lower().compile(option)
    except jax.errors.JaxRuntimeError:
        return {}
    return option


def run_once(fn, *args):
    """``fn(*args)`` compiled as one program with :func:`run_once_options` (e.g. a model's init),
    or the same program compiled before in this process (:func:`compile_cached`)."""
    return compile_cached(jit_rarely_run(fn).lower(*args))(*args)


def jit_rarely_run(fn):
    """``jax.jit(fn)`` whose programs compile with :func:`run_once_options`: for a program that
    runs now and then beside the hot one (``fit``'s gradient probe of a cheap step)."""
    return jax.jit(fn, compiler_options=run_once_options() or None)


class Compiling:
    """A lowered program compiling on a worker thread; calling it waits for the compile, then runs.

    XLA compiles without holding Python's lock, so the thread that lowered the program goes on
    (e.g. compiles and runs a model's initialisation) while this one compiles on another core.
    Only the compile moves: tracing and lowering stay in the calling thread, under its
    ``jax.config`` contexts. ``seconds``: how long the compile took (once :meth:`result` returned).
    """

    def __init__(self, lowered):
        self.lowered, self.seconds = lowered, 0.0
        self.compiled_here = False  # compiled from this lowering (not found compiled before)
        self.future = _WORKERS.submit(self._compile, lowered)

    def _compile(self, lowered):
        start = time.perf_counter()
        try:
            compiled, self.compiled_here = _compile_or_find(lowered)
            return compiled
        finally:
            self.seconds = time.perf_counter() - start

    def result(self):
        """The compiled program (waits for the compile; re-raises its error)."""
        return self.future.result()

    def __call__(self, *args):
        return self.result()(*args)


def compiled_ahead(jitted, *args) -> Callable:
    """``jitted`` (a ``jax.jit`` function) with its program for arguments like ``args`` (arrays,
    or ``jax.ShapeDtypeStruct`` trees with their shardings) compiling now on a worker thread
    (:class:`Compiling`). The returned function, called with arguments of those types, waits for
    that compile and runs the program. A failed compile is raised by the call.

    For a program that waits on set-up work that does not change its types (an initial state,
    the rest of a batch of models): lowered first, it compiles meanwhile. Where the program was
    compiled now, ``jitted`` finds it compiled too (JAX keeps a lowered program's executable),
    so its own later calls (``predict`` after ``fit``'s validation, say) compile nothing.
    """
    compiling = Compiling(jitted.lower(*args))

    def call(*arguments):
        compiled = compiling.result()
        return (jitted if compiling.compiled_here else compiled)(*arguments)

    return call


def compile_cached(lowered):
    """``lowered.compile()``, or the executable this process compiled before for the same
    program (:func:`program_key`; compile options come with the ``jax.jit``): ``fit`` builds its
    functions anew each call, so without this a second ``fit`` of the same architecture and
    shapes (another seed or model object) would compile its programs again. The newest
    :data:`PROGRAMS_KEPT` are kept; :func:`clear_programs` forgets them. Concurrent compiles of
    one program compile it once.
    """
    return _compile_or_find(lowered)[0]


def _compile_or_find(lowered):
    """``(compiled, whether it was compiled from lowered now)`` for :func:`compile_cached`."""
    key = program_key(lowered)
    if key is None:
        return lowered.compile(), True
    with _PROGRAMS_LOCK:
        future = _PROGRAMS.pop(key, None)
        owner = future is None
        _PROGRAMS[key] = future = concurrent.futures.Future() if owner else future  # the newest
        while len(_PROGRAMS) > PROGRAMS_KEPT:
            del _PROGRAMS[next(iter(_PROGRAMS))]
    if not owner:
        return future.result(), False
    try:
        future.set_result(lowered.compile())
    except BaseException as error:
        with _PROGRAMS_LOCK:
            if _PROGRAMS.get(key) is future:
                del _PROGRAMS[key]
        future.set_exception(error)
    return future.result(), True


def program_key(lowered):
    """What tells ``lowered``'s executable apart from every other in this process, or ``None``
    when that cannot be told (then it is compiled every time): its StableHLO text (a SHA-256 of
    it, constants printed in full), its argument and result trees, and what JAX keeps beside the
    text (argument and result types and placement, the arguments it kept, devices, donation, the
    ``jax.jit``'s compile options and the ``jax.config`` options read when compiling) — read from
    JAX's lowering object, whose fields are not public API: where they are missing or not what
    they were, nothing is kept. Programs with host callbacks, effects, constants passed as
    arguments or shape variables are never kept.
    """
    try:
        lowering = lowered._lowering
        args = lowering.compile_args
        if (lowering.const_args or args["host_callbacks"] or args["keepalive"]
                or args["ordered_effects"] or args["unordered_effects"]
                or args["pgle_profiler"] is not None or args["mut"] is not None
                or args["shape_poly_state"].uses_dim_vars):  # fmt: skip
            return None
        beside = tuple(
            (name, _hashable(value)) for name, value in sorted(args.items())
            if name not in _NOT_KEYED
        )  # fmt: skip
        arguments = tuple(jax.tree.leaves(lowered.in_avals))  # (with the unused ones)
        text = hashlib.sha256(lowered.as_text().encode()).digest()  # (constants in full)
        key = (text, lowered.in_tree, arguments, lowered.out_tree, beside,
               tuple(lowering._device_list), lowering._compiler_options_kvs,
               lowering._donated_invars, lowering._platforms,
               tuple(jax.config.values.get(name) for name in _COMPILE_CONFIG))  # fmt: skip
        hash(key)
    except (AttributeError, KeyError, TypeError):
        return None
    return key


def clear_programs() -> None:
    """Forget the programs kept by :func:`compile_cached` (their memory goes with the last use)."""
    with _PROGRAMS_LOCK:
        _PROGRAMS.clear()


def _hashable(value):
    if isinstance(value, set | frozenset):
        return frozenset(value)
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


# compile_args fields checked above, or kept by the executable for error messages only
_NOT_KEYED = frozenset({"host_callbacks", "keepalive", "ordered_effects", "unordered_effects",
                        "pgle_profiler", "mut", "shape_poly_state", "all_args_info"})  # fmt: skip
# jax.config options JAX reads when it compiles (not in the lowered program)
_COMPILE_CONFIG = ("jax_exec_time_optimization_effort", "jax_memory_fitting_effort",
                   "jax_compiler_enable_remat_pass", "jax_enable_pgle")  # fmt: skip
PROGRAMS_KEPT = 32  # compiled programs kept by compile_cached (the newest)
_PROGRAMS: dict = {}  # program_key -> Future of its compiled program, oldest first
_PROGRAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def collector_spares_older_objects():
    """While inside (a ``with`` block or a decorated call), Python's cycle collector leaves alone
    every object that existed on entry (``gc.freeze()``, undone by ``gc.unfreeze()`` on exit).

    Tracing and lowering allocate many objects that outlive a young collection, so Python runs
    full collections, each walking every object of the process: the ~500,000 that importing
    jax, NumPy and friends leaves behind. During ``fit``'s start-up that costs ~0.1 s a
    collection, and the collection holds Python's lock while programs compile on worker
    threads. With the older objects set aside, a full collection walks only what the call
    allocated; on exit they are the collector's again. Nothing is kept alive that reference
    counting would free. A program that froze objects itself keeps its choice (nothing is done).
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def same_types(tree, like) -> bool:
    """``tree`` (arrays) has ``like``'s structure, shapes, dtypes and weak types (``like``: e.g.
    the ``jax.ShapeDtypeStruct`` tree a program was lowered for, from :func:`jax.eval_shape`)."""

    def types(t):
        leaves, structure = jax.tree.flatten(t)
        return structure, [(a.shape, a.dtype, bool(getattr(a, "weak_type", False))) for a in leaves]

    return types(tree) == types(like)


_WORKERS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="jaxnet-compile")
