"""``GridSearchCV`` and ``RandomizedSearchCV`` that train a whole grid as one program per group.

Drop-ins for scikit-learn's classes of the same names (same constructor, ``cv_results_`` keys,
``best_params_``, ``best_score_``, ``best_estimator_``, ``refit``, ``scoring``, any ``cv``
splitter; plus ``n_devices``). When the estimator is jaxnet's ``MLPClassifier`` or
``MLPRegressor`` (or a ``Pipeline`` ending in one), every (candidate x fold) becomes one model on
a vmapped axis of the estimator's own epoch program (:mod:`jaxnet.sklearn._mlp_search`):
candidates that differ only in numeric hyper-parameters (learning rate, ``alpha``, momentum,
betas, epsilon, ``random_state``, ``tol``, ...) and every fold train in **one compiled
program**, each model on its fold's rows with its own stopping rule; a structural parameter
(layer sizes, activation, solver, batch size) starts another group
(:mod:`jaxnet.sklearn._search_plan`). A ``Pipeline``'s preprocessing is fitted per fold on the
host (once per distinct setting). Anything else (another estimator, ``NeuralNetClassifier``
included; ``solver="lbfgs"``, ``early_stopping``, ``warm_start``, sparse or multilabel inputs, a
fold that lacks a class, ``fit`` parameters) runs cell by cell exactly as scikit-learn's own
search does.

The scores are the same as scikit-learn's search running the estimator cell by cell (a test
checks every ``mean_test_score`` to 1e-4 and the same ``best_params_``).

::

    from jaxnet.sklearn import MLPClassifier
    from jaxnet.sklearn.search import GridSearchCV

    search = GridSearchCV(MLPClassifier(hidden_layer_sizes=(64,), max_iter=30),
                          {"learning_rate_init": [1e-3, 3e-3, 1e-2], "alpha": [1e-4, 1e-2]},
                          cv=5)
    search.fit(X, y)
    search.best_params_, search.best_score_
"""

from __future__ import annotations

import time
from collections import defaultdict

import jax
import numpy as np
from sklearn import model_selection
from sklearn.base import clone, is_classifier
from sklearn.model_selection import ParameterGrid, ParameterSampler
from sklearn.model_selection._validation import _score, _warn_or_raise_about_fit_failures
from sklearn.pipeline import Pipeline
from sklearn.utils import indexable
from sklearn.utils.validation import _num_samples

from jaxnet.compilation import collector_spares_older_objects
from jaxnet.errors import ConfigError
from jaxnet.sklearn import _search_plan
from jaxnet.train.parallel import models_mesh


class _BatchedSearch:
    """The batched ``fit`` shared by both searches; ``_candidates()`` lists the candidates.

    ``n_devices``: split each program's models across this many devices (``-1``: every device
    JAX sees; e.g. both cores of a CPU with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2``); ``None`` uses one device. A count,
    not a mesh, so the search pickles and clones as scikit-learn's does.
    """

    @collector_spares_older_objects()
    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters (one program per structural group)."""
        X_checked, y_checked = indexable(X, y)
        if not hasattr(X_checked, "iloc") and not hasattr(X_checked, "tocsr"):
            X_checked = np.asarray(X_checked)
        if params or y is None:  # fit parameters, or no targets: scikit-learn's own way
            return super().fit(X, y, **params)
        cv = model_selection.check_cv(self.cv, y_checked, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X_checked, y_checked))
        candidates = list(self._candidates())
        groups = _search_plan.plan_search(self.estimator, candidates, X_checked, y_checked, splits)
        if groups is None:  # something the engine does not cover: scikit-learn's own way
            return super().fit(X, y, **params)
        scorers, refit_metric = self._get_scorers()
        self.n_splits_ = len(splits)
        out = self._train_and_score(groups, candidates, splits, scorers, X_checked, y_checked)
        _warn_or_raise_about_fit_failures(out, self.error_score)
        first = out[0]["test_scores"]
        self.multimetric_ = isinstance(first, dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(first)
            refit_metric = self.refit
        results = self._format_results(candidates, len(splits), out, defaultdict(list))
        self._finish(results, refit_metric, X, y)
        self.scorer_ = getattr(scorers, "_scorers", scorers)
        self.cv_results_ = results
        return self

    def _train_and_score(self, groups, candidates, splits, scorers, X, y):
        """``out[c * n_splits + s]``: scikit-learn's per-fit dict for candidate ``c``, split
        ``s`` (test scores, n_test_samples, fit and score times)."""
        out = [None] * (len(candidates) * len(splits))
        for members in groups:
            start = time.time()
            adapter = _search_plan.adapter_for(members[0].estimator)
            fitted = adapter.train(members, _models_mesh(self.n_devices, type(self).__name__))
            fit_time = (time.time() - start) / len(members)
            for member, estimator in zip(members, fitted, strict=True):
                if isinstance(estimator, str):  # the fit failed, as the estimator's would
                    entry = _failed(estimator, scorers, self.error_score, self.return_train_score)
                    out[member.candidate * len(splits) + member.split] = entry | {
                        "n_test_samples": len(splits[member.split][1]),
                        "fit_time": fit_time,
                    }
                    continue
                start = time.time()
                if member.preprocessing is not None:
                    final_name = self.estimator.steps[-1][0]
                    estimator = Pipeline([*member.preprocessing.steps, (final_name, estimator)])
                train, test = splits[member.split]
                X_test, y_test = _subset(X, test), _subset(y, test)
                entry = {
                    "fit_error": None,
                    "test_scores": _score(estimator, X_test, y_test, scorers, {},
                                          self.error_score),
                    "n_test_samples": _num_samples(X_test),
                    "fit_time": fit_time,
                }  # fmt: skip
                if self.return_train_score:
                    entry["train_scores"] = _score(
                        estimator, _subset(X, train), _subset(y, train), scorers, {},
                        self.error_score,
                    )  # fmt: skip
                entry["score_time"] = time.time() - start
                out[member.candidate * len(splits) + member.split] = entry
        return out

    def _finish(self, results, refit_metric, X, y):
        """best_index_, best_score_, best_params_, and the refitted best_estimator_, as
        scikit-learn's ``BaseSearchCV.fit`` sets them."""
        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(self.refit, refit_metric, results)
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
            self.best_params_ = results["params"][self.best_index_]
        if self.refit:
            self.best_estimator_ = clone(self.estimator).set_params(
                **clone(self.best_params_, safe=False)
            )
            start = time.time()
            self.best_estimator_.fit(X, y)
            self.refit_time_ = time.time() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_


def _failed(message: str, scorers, error_score, train_scores: bool) -> dict:
    """scikit-learn's record of a fit that raised ``message``: ``error_score`` for every metric
    (or the error itself with ``error_score="raise"``)."""
    if error_score == "raise":
        raise ValueError(message)
    names = getattr(scorers, "_scorers", None)
    scores = {name: error_score for name in names} if names else error_score
    entry = {"fit_error": message, "test_scores": scores, "score_time": 0.0}
    return entry | ({"train_scores": scores} if train_scores else {})


def _models_mesh(n_devices, owner: str):
    """A :func:`~jaxnet.train.parallel.models_mesh` over the first ``n_devices`` devices
    (``-1``: all), or ``None`` for one device."""
    if n_devices is None or n_devices == 1:
        return None
    devices = jax.devices()
    if n_devices != -1 and not 1 <= n_devices <= len(devices):
        raise ConfigError(
            f"n_devices must be -1 or between 1 and the {len(devices)} devices, got {n_devices}",
            (owner,),
        )
    return models_mesh(devices if n_devices == -1 else devices[:n_devices])


def _subset(data, rows):
    if data is None:
        return None
    if hasattr(data, "iloc"):
        return data.iloc[rows]
    return np.asarray(data)[rows] if not hasattr(data, "tocsr") else data[rows]


class GridSearchCV(_BatchedSearch, model_selection.GridSearchCV):
    """scikit-learn's ``GridSearchCV``; jaxnet estimators train as one program per group."""

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
        n_devices=None,
    ):
        super().__init__(
            estimator, param_grid, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv,
            verbose=verbose, pre_dispatch=pre_dispatch, error_score=error_score,
            return_train_score=return_train_score,
        )  # fmt: skip
        self.n_devices = n_devices

    def _candidates(self):
        return ParameterGrid(self.param_grid)


class RandomizedSearchCV(_BatchedSearch, model_selection.RandomizedSearchCV):
    """scikit-learn's ``RandomizedSearchCV``; jaxnet estimators train as one program per
    group (the sampled candidates are grouped by their structural parameters)."""

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        n_iter=10,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        random_state=None,
        error_score=np.nan,
        return_train_score=False,
        n_devices=None,
    ):
        super().__init__(
            estimator, param_distributions, n_iter=n_iter, scoring=scoring, n_jobs=n_jobs,
            refit=refit, cv=cv, verbose=verbose, pre_dispatch=pre_dispatch,
            random_state=random_state, error_score=error_score,
            return_train_score=return_train_score,
        )  # fmt: skip
        self.n_devices = n_devices

    def _candidates(self):
        return ParameterSampler(
            self.param_distributions, self.n_iter, random_state=self.random_state
        )
