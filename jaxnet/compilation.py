"""Compile-time helpers: a persistent compilation cache, fast compiles for run-once code,
compiling on a worker thread while the caller goes on, and keeping Python's cycle collector off
the import-time objects while a training call starts up."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import os
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
    """``fn(*args)`` compiled as one program with :func:`run_once_options` (e.g. a model's init)."""
    return jit_rarely_run(fn)(*args)


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
        self.future = _WORKERS.submit(self._compile, lowered)

    def _compile(self, lowered):
        start = time.perf_counter()
        try:
            return lowered.compile()
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
    (:class:`Compiling`). The returned function waits for that compile, then calls ``jitted``,
    which finds the program compiled (JAX keeps a lowered program's executable): ``jitted``'s own
    cache then serves every later call. A failed compile is raised by the call.

    For a program that waits on set-up work that does not change its types (an initial state,
    the rest of a batch of models): lowered first, it compiles meanwhile.
    """
    compiling = Compiling(jitted.lower(*args))

    def call(*arguments):
        compiling.future.exception()
        return jitted(*arguments)

    return call


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
