"""How a search's (candidate x fold) cells are sorted into programs.

:func:`plan_search` configures one estimator per cell (a clone with the candidate's parameters)
and sorts the cells into **groups** by the estimator's *structure* (what must be equal within a
program: layer sizes, activation, solver, batch size, ...); numeric hyper-parameters and the
seed may differ within a group. A ``Pipeline``'s steps before the last are fitted on each
fold's training rows on the host, once per distinct preprocessing setting, and the group's
models train on the transformed data. It returns ``None`` when any cell is outside what a
batched program reproduces exactly; the search then runs scikit-learn's own cell-by-cell path.

An estimator class takes part through an *adapter* (:data:`ADAPTERS`), an object with
``structure(estimator, X, y, train) -> Hashable | None`` and ``train(members, mesh) ->
[fitted estimator]`` (``members``: the group's :class:`Member` list).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline


class Member(NamedTuple):
    """One model of a group: cell ``(candidate, split)``, its configured (unfitted) estimator,
    the data it sees (``x``: the features after the fold's preprocessing, all rows) and its
    training rows; ``preprocessing`` is the fold's fitted ``Pipeline`` head, or ``None``."""

    candidate: int
    split: int
    estimator: Any
    x: Any
    y: Any
    train: np.ndarray
    preprocessing: Any


def adapter_for(estimator):
    """The adapter of ``estimator``'s class (:mod:`jaxnet.sklearn._mlp_search`), or ``None``."""
    from jaxnet.sklearn import _mlp_search

    return _mlp_search.ADAPTERS.get(type(estimator))


def plan_search(estimator, candidates, X, y, splits) -> list[list[Member]] | None:
    """The cells grouped into programs (groups in order of first appearance); ``None`` if any
    cell cannot be batched."""
    blocks: dict = {}  # (preprocessing setting, split) -> (fitted head, transformed X)
    groups: dict = {}
    for c, candidate in enumerate(candidates):
        configured = clone(estimator).set_params(**candidate)
        head, final = None, configured
        if isinstance(configured, Pipeline):
            head, final = configured[:-1], configured.steps[-1][1]
        adapter = adapter_for(final)
        if adapter is None:
            return None
        for s, (train, _test) in enumerate(splits):
            key = None
            if head is not None:
                key = (repr(sorted(head.get_params(deep=True).items(), key=str)), s)
                if key not in blocks:
                    fitted = clone(head).fit(_rows(X, train), _rows(y, train))
                    blocks[key] = (fitted, fitted.transform(X))
            pre, x = blocks[key] if head is not None else (None, X)
            structure = adapter.structure(final, x, y, train)
            if structure is None:
                return None
            member = Member(c, s, final, x, y, np.asarray(train), pre)
            groups.setdefault((adapter, structure), []).append(member)
    return list(groups.values())


def _rows(data, rows):
    if data is None:
        return None
    return data.iloc[rows] if hasattr(data, "iloc") else data[rows]
