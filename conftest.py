"""Root pytest configuration: the docstring examples in ``jaxnet/`` run as doctests.

``python -m pytest`` collects ``tests/`` and ``jaxnet/`` (``--doctest-modules``, see
pyproject.toml). Every example sees ``jax``, ``jnp``, ``np``, ``optax``, ``jaxnet`` and jaxnet's
``optim``, ``losses`` and ``metrics`` besides its module's own names, and runs in a fresh
temporary directory, so an example that writes ``"runs/mlp"`` writes there.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet import losses, metrics, optim


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
