"""Compile-time helpers: a persistent compilation cache."""

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
