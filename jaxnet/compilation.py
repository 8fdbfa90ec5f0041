"""Compile-time helpers: a persistent compilation cache, and fast compiles for run-once code."""

from __future__ import annotations

import os
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
    per Dense layer on a 2-core machine) and saves microseconds; ``-O0`` cuts that to a fraction.
    Other backends keep their defaults.
    """
    if jax.default_backend() != "cpu":
        return {}
    return {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run_once(fn, *args):
    """``fn(*args)`` compiled as one program with :func:`run_once_options` (e.g. a model's init)."""
    return jax.jit(fn).lower(*args).compile(compiler_options=run_once_options())(*args)
