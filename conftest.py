"""Root pytest configuration: the test session's own home, caches and data folder; and the
docstring examples in ``jaxnet/`` run as doctests.

Before anything imports JAX or jaxnet, ``HOME``, jaxnet's compilation cache
(``JAXNET_CACHE_DIR``), JAX's (``JAX_COMPILATION_CACHE_DIR``) and the datasets folder
(``JAXNET_DATA_DIR``) point into one temporary folder, removed at the end: the suite never writes
under the user's ``~`` (a CLI or demo run turns the persistent cache on, and a test run compiles
thousands of programs), a first run is as cold as a fresh clone's, and the test processes
(pytest's and the CLI/training subprocesses it starts) share one compilation cache, so a program
two of them compile is compiled once.

``python -m pytest`` collects ``tests/`` and ``jaxnet/`` (``--doctest-modules``, see
pyproject.toml). Every example sees ``jax``, ``jnp``, ``np``, ``optax``, ``jaxnet`` and jaxnet's
``optim``, ``losses`` and ``metrics`` besides its module's own names, and runs in a fresh
temporary directory, so an example that writes ``"runs/mlp"`` writes there.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# One folder for the whole run: pytest-xdist's workers inherit it from the controller (which
# made it first and removes it at the end), so they share one compilation cache too.
_INHERITED = os.environ.get("JAXNET_TEST_SESSION_DIR")
SESSION_DIR = Path(_INHERITED or tempfile.mkdtemp(prefix="jaxnet-tests-"))
SESSION_ENV = {
    "JAXNET_TEST_SESSION_DIR": str(SESSION_DIR),
    "HOME": str(SESSION_DIR / "home"),
    "XDG_CACHE_HOME": str(SESSION_DIR / "home" / ".cache"),
    "XDG_CONFIG_HOME": str(SESSION_DIR / "home" / ".config"),
    "JAXNET_CACHE_DIR": str(SESSION_DIR / "xla"),
    "JAX_COMPILATION_CACHE_DIR": str(SESSION_DIR / "xla"),
    # Every program goes into the run's cache, so a program that two test processes compile
    # (the same model in two workers or subprocesses) is compiled once.
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAXNET_DATA_DIR": str(SESSION_DIR / "datasets"),
    "MPLCONFIGDIR": str(SESSION_DIR / "matplotlib"),  # its font cache
    # Test speed only: LLVM's optimisation costs compile time (most of a test's time on a CPU:
    # -O0 cuts the suite's CPU time by about 13%) and saves run time that tests of small models
    # do not need; it changes how fast the code runs, not what it computes. Programs compared in
    # a test are compiled alike; subprocesses inherit it. Users' programs keep XLA's defaults.
    "XLA_FLAGS": " ".join(
        [
            os.environ.get("XLA_FLAGS", ""),
            "--xla_backend_optimization_level=0",
            "--xla_llvm_disable_expensive_passes=true",
        ]
    ).strip()
    if not _INHERITED
    else os.environ.get("XLA_FLAGS", ""),
}
if not _INHERITED:
    for _folder in ("home", "xla", "datasets", "matplotlib"):
        (SESSION_DIR / _folder).mkdir()
    atexit.register(shutil.rmtree, SESSION_DIR, ignore_errors=True)
os.environ.update(SESSION_ENV)

import jax  # noqa: E402 - after the environment above
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

import jaxnet  # noqa: E402
from jaxnet import losses, metrics, optim  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_setup(request, doctest_namespace):
    """Doctests only: the common names, and a temporary working directory."""
    if not isinstance(request.node, pytest.DoctestItem):
        return
    doctest_namespace.update(
        jax=jax, jnp=jnp, np=np, optax=optax, jaxnet=jaxnet, optim=optim, losses=losses,
        metrics=metrics,
    )  # fmt: skip
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
