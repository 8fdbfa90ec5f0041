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
import subprocess
import sys
import tempfile
from pathlib import Path

# One folder for the whole run: pytest-xdist's workers inherit it from the controller (which
# made it first and removes it at the end), so they share one compilation cache too.
_INHERITED = os.environ.get("JAXNET_TEST_SESSION_DIR")


def _test_speed_xla_flags() -> str:
    """Test speed only: compiling is most of a test's time on a CPU, and these flags make XLA:CPU
    compile fast rather than emit fast code, which tests of small models do not need. LLVM at
    -O0 cuts the suite's CPU time by ~13%; XLA's older elemental emitters instead of its MLIR
    fusion emitters, on one codegen thread, halve what is left (the suite: 805 -> 398 CPU
    seconds). They change how fast the code runs and may move a float's last bit (an FMA
    contracted or not), not what it computes: programs compared in a test are compiled alike,
    subprocesses inherit the flags, and users' programs keep XLA's defaults. A flag that this
    jaxlib's XLA does not know (an unknown flag in ``XLA_FLAGS`` aborts every process) is left
    out: a jaxlib without it runs the suite slower rather than not at all."""
    flags = ["--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"]
    newer = ["--xla_cpu_use_fusion_emitters=false", "--xla_cpu_parallel_codegen_split_count=1"]
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import jax; jax.devices()"],
            env={**os.environ, "XLA_FLAGS": " ".join(newer), "JAX_PLATFORMS": "cpu"},
            capture_output=True, timeout=120,
        )  # fmt: skip
        known = newer if probe.returncode == 0 else []
    except subprocess.TimeoutExpired:
        known = []
    return " ".join([os.environ.get("XLA_FLAGS", ""), *flags, *known]).strip()


SESSION_DIR = Path(_INHERITED or tempfile.mkdtemp(prefix="jaxnet-tests-"))
SESSION_ENV = {
    "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") if _INHERITED else _test_speed_xla_flags(),
    "JAXNET_TEST_SESSION_DIR": str(SESSION_DIR),
    "HOME": str(SESSION_DIR / "home"),
    "XDG_CACHE_HOME": str(SESSION_DIR / "home" / ".cache"),
    "XDG_CONFIG_HOME": str(SESSION_DIR / "home" / ".config"),
    "JAXNET_CACHE_DIR": str(SESSION_DIR / "xla"),
    "JAX_COMPILATION_CACHE_DIR": str(SESSION_DIR / "xla"),
    # A program that took over 0.1 s to compile goes into the run's cache, so one that two test
    # processes compile (the same model in two workers or subprocesses) is compiled once. (Every
    # program: the suite took 230 s instead of 212; reading a small one back costs as much as
    # compiling it, and writing it costs more.)
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.1",
    "JAXNET_DATA_DIR": str(SESSION_DIR / "datasets"),
    "MPLCONFIGDIR": str(SESSION_DIR / "matplotlib"),  # its font cache
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
