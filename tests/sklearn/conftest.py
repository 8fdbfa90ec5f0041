"""Shared by the scikit-learn tests: ``quiet_convergence`` silences the convergence warnings that
short runs are expected to raise (``pytestmark = pytest.mark.usefixtures(...)`` in a module)."""

import warnings

import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402


@pytest.fixture
def quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
