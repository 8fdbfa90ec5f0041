"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's multi-layer perceptrons, on jaxnet.

Every constructor parameter has scikit-learn's name, meaning and default, and the fitted
attributes are the same; ``sklearn.neural_network``'s source is the spec. The algorithm is the
same: Glorot-uniform initial weights drawn from ``random_state`` exactly as scikit-learn draws
them, the same shuffles, batches (``batch_size="auto"`` is ``min(200, n_samples)``, the last
batch may be short), loss (data loss plus ``alpha / (2 * batch size) * sum W**2`` over the
kernels), learning-rate schedules, stopping rule and early stopping. Each epoch is one compiled
``lax.scan`` over its batches. What differs (float32, Adam's epsilon, L-BFGS's line search) is
listed in ``docs/sklearn.md``.

>>> from sklearn.datasets import load_iris
>>> from jaxnet.sklearn import MLPClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
>>> clf.score(X, y) > 0.9
True
"""

from __future__ import annotations

import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, shuffle
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from jaxnet import optim, recipes
from jaxnet.compilation import collector_spares_older_objects, compiled_ahead
from jaxnet.core import init_model
from jaxnet.regularizers import l2
from jaxnet.sklearn import _fitting
from jaxnet.sklearn._fitting import Training
from jaxnet.train.fit import as_key

STOCHASTIC = ("sgd", "adam")


def _softmax_loss(outputs, y):
    return -jnp.sum(y * jax.nn.log_softmax(outputs, axis=-1), axis=-1)


def _logistic_loss(outputs, y):
    # -[y log s(z) + (1 - y) log(1 - s(z))], summed over the outputs
    return jnp.sum(jnp.logaddexp(0.0, outputs) - y * outputs, axis=-1)


def _squared_loss(outputs, y):
    return 0.5 * jnp.sum((outputs - y) ** 2, axis=-1)


def _poisson_loss(outputs, y):
    # half Poisson deviance with a log link: exp(z) - y z + (y log y - y)
    const = jnp.where(y > 0, y * jnp.log(jnp.where(y > 0, y, 1.0)), 0.0) - y
    return jnp.sum(jnp.exp(outputs) - y * outputs + const, axis=-1)


# scikit-learn clips probabilities to [eps, 1 - eps] (float64's eps) in the loss it reports
_LOG_EPS, _LOG_1M_EPS = float(np.log(np.finfo(np.float64).eps)), -float(np.finfo(np.float64).eps)


def _reported_softmax_loss(outputs, y):
    log_p = jnp.clip(jax.nn.log_softmax(outputs, axis=-1), _LOG_EPS, _LOG_1M_EPS)
    return -jnp.sum(y * log_p, axis=-1)


def _reported_logistic_loss(outputs, y):
    log_p = jnp.clip(jax.nn.log_sigmoid(outputs), _LOG_EPS, _LOG_1M_EPS)
    log_q = jnp.clip(jax.nn.log_sigmoid(-outputs), _LOG_EPS, _LOG_1M_EPS)
    return -jnp.sum(y * log_p + (1 - y) * log_q, axis=-1)


def _reported_squared_loss(outputs, y):
    return _squared_loss(outputs, y) / y.shape[-1]  # scikit-learn's mean over the outputs


# the loss scikit-learn reports (loss_, loss_curve_) where it differs from the one descended
_REPORTED = {
    "softmax": _reported_softmax_loss,
    "logistic": _reported_logistic_loss,
    "identity": _reported_squared_loss,
}

# out_activation_ -> (per-example loss of the outputs, outputs -> predictions)
OUTPUTS = {
    "softmax": (_softmax_loss, lambda z: jax.nn.softmax(z, axis=-1)),
    "logistic": (_logistic_loss, jax.nn.sigmoid),
    "identity": (_squared_loss, lambda z: z),
    "exp": (_poisson_loss, jnp.exp),
}


def _half_sum_of_squares(params):
    return l2(0.5)(params)


def mlp_optimizer(solver: str, nesterov: bool):
    """``hyper -> optimizer`` for a stochastic ``solver``; numeric hyper-parameters may be arrays.

    ``adam`` reads ``learning_rate``, ``beta_1``, ``beta_2``, ``epsilon``; ``sgd`` reads
    ``learning_rate`` and ``momentum`` (Nesterov's form when ``nesterov``).
    """
    if solver == "adam":
        return lambda h: optim.adam(
            h["learning_rate"], b1=h["beta_1"], b2=h["beta_2"], eps=h["epsilon"]
        )
    # scikit-learn's form: the velocity holds learning-rate-scaled steps (v = mu v - lr g), so
    # the learning rate multiplies before the momentum trace; equal to optim.sgd while the rate
    # is constant, and scikit-learn's own when invscaling or adaptive change it.
    return lambda h: optim.chain(
        optim.scale_by_learning_rate(h["learning_rate"]),
        optim.trace(decay=h["momentum"], nesterov=nesterov),
    )


def _dense_names(params) -> list[str]:
    """The Dense layers' names in ``params``, in order (``dense_0``, ``dense_2``, ...)."""
    names = [name for name, p in params.items() if p]
    return sorted(names, key=lambda name: int(name.rsplit("_", 1)[1]))


_STRUCTURES: dict = {}


def _structure(training: Training, n_features_padded: int) -> tuple[list[str], list[str]]:
    """The names of ``training.model``'s layers and of its Dense layers, in order (traced once
    per structure and width: a prediction does not trace the model again)."""
    key = (training.signature, n_features_padded)
    if key not in _STRUCTURES:
        shapes, _ = jax.eval_shape(
            lambda: init_model(training.model, jax.random.key(0), (n_features_padded,))
        )
        _STRUCTURES[key] = (list(shapes), _dense_names(shapes))
    return _STRUCTURES[key]


class BaseMLP(BaseEstimator):
    """The parameters, fit loop and prediction shared by the two MLP estimators."""

    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _training(self, n_outputs: int | None = None, out_activation: str | None = None):
        """The :class:`~jaxnet.sklearn._fitting.Training` these parameters describe.

        ``n_outputs``/``out_activation`` default to the fitted ones; a grid search calls this on
        an unfitted clone with both given.
        """
        n_outputs = self.n_outputs_ if n_outputs is None else n_outputs
        out = self.out_activation_ if out_activation is None else out_activation
        hidden = tuple(self._hidden())
        loss, output = OUTPUTS[out]
        model = recipes.mlp(n_outputs, hidden, self.activation, name="mlp")
        solver = self.solver if self.solver in STOCHASTIC else "adam"
        nesterov = bool(self.nesterovs_momentum)
        hyper = {
            "alpha": self.alpha,
            "learning_rate": self.learning_rate_init,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "momentum": self.momentum,
        }
        signature = ("mlp", hidden, self.activation, n_outputs, out, solver, nesterov)
        return Training(
            model,
            loss,
            _half_sum_of_squares,
            mlp_optimizer(solver, nesterov),
            hyper,
            output,
            signature,
            _REPORTED.get(out),
        )

    # ----- parameters <-> scikit-learn's coefs_/intercepts_
    def _params(self, training: Training, n_features_padded: int):
        """``(params, state)`` of ``training.model`` holding ``coefs_``/``intercepts_`` (NumPy
        float32; the first kernel's rows padded to ``n_features_padded``)."""
        names, dense = _structure(training, n_features_padded)
        params = {name: {} for name in names}
        for name, coef, intercept in zip(dense, self.coefs_, self.intercepts_, strict=True):
            rows = n_features_padded if name == dense[0] else coef.shape[0]
            params[name] = {
                "w": _fitting.pad_rows(np.asarray(coef), rows),
                "b": np.asarray(intercept, np.float32),
            }
        return params, {name: {} for name in names}

    def _store(self, params, dtype, state=None):
        n_features = self.n_features_in_
        coefs, intercepts = [], []
        for i, name in enumerate(_dense_names(params)):
            w = np.asarray(params[name]["w"]).astype(dtype)
            coefs.append(w[:n_features] if i == 0 else w)
            intercepts.append(np.asarray(params[name]["b"]).astype(dtype))
        self.coefs_, self.intercepts_ = coefs, intercepts

    # ----- the hooks NeuralNetClassifier/Regressor override
    _fitted_attribute = "coefs_"

    def _stochastic(self) -> bool:
        return self.solver in STOCHASTIC

    def _learning_rate_init(self) -> float:
        return float(self.learning_rate_init)

    def _count_no_improvement(self, worse: bool) -> None:
        self._no_improvement_count = self._no_improvement_count + 1 if worse else 0

    def _track_training_loss(self) -> None:
        """scikit-learn's rule without early stopping: an epoch improves when its loss beats the
        best by more than ``tol``."""
        self._count_no_improvement(self.loss_ > self.best_loss_ - self.tol)
        self.best_loss_ = min(self.best_loss_, self.loss_)

    def _adjust_learning_rate(self) -> str | None:
        """After an epoch: invscaling's rate; after more than ``n_iter_no_change`` epochs without
        improvement, ``"stop"``, or (``"adaptive"`` above 1e-6) ``"divided"`` by 5."""
        if self._schedule() == "invscaling":
            self._learning_rate = self._learning_rate_init() / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count <= self.n_iter_no_change:
            return None
        if self._schedule() != "adaptive" or self._learning_rate <= 1e-6:
            return "stop"
        self._learning_rate /= 5.0
        self._no_improvement_count = 0
        return "divided"

    def _schedule(self) -> str:
        return self.learning_rate if self.solver == "sgd" else "constant"

    def _feature_padding(self, n_features: int) -> int | None:
        return _fitting.bucket_features(n_features)

    def _epoch_key(self):
        return as_key(0)  # an MLP has no randomness inside the step

    def _monitor(self, training):
        """A :class:`~jaxnet.diagnostics.GradientMonitor` when ``diagnostics=True``."""
        if not self.diagnostics:
            return None
        from jaxnet.diagnostics import GradientMonitor

        monitor = GradientMonitor(training.model, every=1, verbose=bool(self.verbose))
        monitor.reset()
        return monitor

    def _validate_X_y(self, X, y, reset, **options):
        return validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
            dtype=(np.float64, np.float32), reset=reset, **options,
        )  # fmt: skip

    def _weights(self) -> list:
        return [*self.coefs_, *self.intercepts_]

    def _layer_units(self, X) -> list[int]:
        return [X.shape[1], *self._hidden(), self.n_outputs_]

    def _init_weights(self, layer_units, dtype, rng):
        # scikit-learn's _init_coef: the same draws from the same random state
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:], strict=True):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(rng.uniform(-bound, bound, fan_out).astype(dtype))

    def _initialize(self, y, layer_units, dtype, rng):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not isinstance(self, ClassifierMixin):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        self._init_weights(layer_units, dtype, rng)
        if self._stochastic():
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        self._opt_state = None

    @collector_spares_older_objects()
    def _fit(self, X, y, incremental=False):
        self._hidden()  # raises on sizes <= 0, as scikit-learn does before anything else
        fitted = hasattr(self, self._fitted_attribute)
        first_pass = not fitted or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if scipy.sparse.issparse(X):
            X = X.toarray()
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        rng = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, self._layer_units(X), X.dtype, rng)
        if self._stochastic():
            self._fit_stochastic(X, y, rng, incremental)
        else:
            self._fit_lbfgs(X, y)
        if not all(np.isfinite(w).all() for w in self._weights()):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _fit_stochastic(self, X, y, rng, incremental):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        training = self._training()
        d_pad = self._feature_padding(X.shape[1])
        # on the device: the epoch gets its own outputs back, one compiled entry for both
        params, state = jax.device_put(self._params(training, d_pad))
        hyper = dict(training.hyper)
        init_optimizer = _fitting.programs(training).init_optimizer
        fresh = not incremental or self._opt_state is None
        opt_state = (jax.eval_shape(init_optimizer, params, _fitting.as_hyper(hyper)) if fresh
                     else self._opt_state)  # fmt: skip
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = y if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
            X, X_val, y, y_val = train_test_split(
                X, y, random_state=rng, test_size=self.validation_fraction, stratify=stratify
            )
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            if isinstance(self, ClassifierMixin):
                y_val = self._label_binarizer.inverse_transform(y_val)
            best_params = params
        n = X.shape[0]
        sample_idx = np.arange(n, dtype=int)
        self.n_iter_ = 0  # this call's epochs, as scikit-learn counts them
        min_width = 32  # "auto" (at most 200 rows): one program for every n, refits included
        if self.batch_size == "auto":
            batch_size, min_width = min(200, n), 256
        else:
            if self.batch_size > n:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going to be "
                    "clipped",
                    stacklevel=3,
                )
            batch_size = int(np.clip(self.batch_size, 1, n))
        xp = _fitting.pad_rows(X, _fitting.bucket(n), d_pad)
        yp = _fitting.pad_rows(y.astype(np.float32), _fitting.bucket(n))
        monitor = self._monitor(training)
        batches = jax.ShapeDtypeStruct(_fitting.batches_shape(n, batch_size, min_width), np.int32)
        epoch = compiled_ahead(  # compiles on a worker thread while the optimizer's state is made
            _fitting.programs(training, monitor and monitor.probe).epoch, params, state,
            opt_state, _fitting.as_hyper(hyper), xp, yp, batches, batches.update(dtype=np.float32),
            jax.eval_shape(self._epoch_key),  # (the key's type: each epoch has its own key)
        )  # fmt: skip
        if fresh:
            opt_state = self._opt_state = init_optimizer(params, _fitting.as_hyper(hyper))
            self._learning_rate = self._learning_rate_init()
        loop = types.SimpleNamespace(train_state=None, stop_training=False)
        for _ in range(self.max_iter):
            key = self._epoch_key()
            if self.shuffle:
                sample_idx = shuffle(sample_idx, random_state=rng)
            rows, weights = _fitting.batch_rows(sample_idx, batch_size, min_width)
            hyper["learning_rate"] = self._learning_rate
            params, state, opt_state, loss_sum, *probes = epoch(
                params, state, opt_state, _fitting.as_hyper(hyper), xp, yp, rows, weights, key
            )
            self.n_iter_ += 1
            self.loss_ = float(loss_sum) / n
            if monitor is not None:
                monitor.on_probe(self.n_iter_ - 1, np.array([self.t_]), probes[0])
                monitor.on_epoch_end(self.n_iter_ - 1, {"loss": self.loss_}, loop)
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            if early_stopping:
                self._store(params, X.dtype, state)
                score = self._score(X_val, y_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:f}")
                self._count_no_improvement(score < self.best_validation_score_ + self.tol)
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params = params
            else:
                self._track_training_loss()
            outcome = self._adjust_learning_rate()
            if outcome is not None:
                what = "Validation score" if early_stopping else "Training loss"
                msg = (
                    f"{what} did not improve more than tol={self.tol:f} for "
                    f"{self.n_iter_no_change} consecutive epochs."
                )
                if outcome == "stop":
                    if self.verbose:
                        print(msg + " Stopping.")
                    break
                if self.verbose:
                    print(msg + f" Setting learning rate to {self._learning_rate:f}")
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                    "optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        if monitor is not None:
            monitor.on_train_end(loop)
            self.diagnostics_ = list(monitor.findings)
        self._opt_state = jax.tree.map(np.asarray, opt_state)
        self._store(best_params if early_stopping else params, X.dtype, state)

    def _fit_lbfgs(self, X, y):
        training = self._training()
        n, d_pad = X.shape[0], self._feature_padding(X.shape[1])
        params, state = self._params(training, d_pad)
        xp = _fitting.pad_rows(X, _fitting.bucket(n), d_pad)
        yp = _fitting.pad_rows(y.astype(np.float32), _fitting.bucket(n))
        w = np.zeros(xp.shape[0], np.float32)
        w[:n] = 1.0
        limits = (np.int32(self.max_iter), np.int32(self.max_fun), np.float32(self.tol))
        params, loss, n_iter, n_fun = _fitting.programs(training).lbfgs(
            params, state, _fitting.as_hyper(training.hyper), xp, yp, w, *limits
        )
        self.n_iter_, self.loss_ = int(n_iter), float(loss)
        if self.n_iter_ >= self.max_iter or int(n_fun) >= self.max_fun:
            what = "ITERATIONS" if self.n_iter_ >= self.max_iter else "FUNCTION EVALUATIONS"
            warnings.warn(
                f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status=1):\n"
                f"STOP: TOTAL NO. OF {what} REACHED LIMIT",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._store(params, X.dtype, state)

    def _forward(self, X, check_input=True):
        if check_input:
            X = validate_data(
                self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False
            )
        if scipy.sparse.issparse(X):
            X = X.toarray()
        training = self._training()
        d_pad = self._feature_padding(X.shape[1])
        out = _fitting.predict(training, *self._params(training, d_pad), X, d_pad)
        return out.astype(X.dtype)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the model to ``X`` ``(n_samples, n_features)`` and ``y`` ``(n_samples,)`` or
        ``(n_samples, n_outputs)``; returns ``self``."""
        return self._fit(X, y, incremental=False)

    def _check_solver(self):
        if not self._stochastic():
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. lbfgs is not stochastic."
            )
        return True

    def _score(self, X, y):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier: ``sklearn.neural_network.MLPClassifier``'s parameters,
    attributes and methods, trained with jaxnet (see the module docstring).

    Binary, multiclass (softmax) and multilabel (one logistic unit per label) targets. One
    parameter more than scikit-learn's: ``diagnostics=True`` runs a
    :class:`~jaxnet.diagnostics.GradientMonitor` probe on each epoch's first step (stochastic
    solvers) and leaves its findings in ``diagnostics_``.
    """

    _parameter_constraints: dict = {
        **_SkMLPClassifier._parameter_constraints,
        "diagnostics": ["boolean"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        diagnostics=False,
    ):
        self.diagnostics = diagnostics
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    loss = "log_loss"  # scikit-learn's MLPClassifier.loss: fixed, not a parameter

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_X_y(X, y, reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return X, self._label_binarizer.transform(y).astype(bool)

    @staticmethod
    def _score_function(y, y_pred):
        from sklearn.metrics import accuracy_score

        return accuracy_score(y, y_pred)

    def predict(self, X):
        """Class labels ``(n_samples,)`` (or ``(n_samples, n_labels)`` for multilabel)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X``, ``y``; ``classes`` (every class) is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, incremental=True)

    def predict_proba(self, X):
        """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        check_is_fitted(self)
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor: ``sklearn.neural_network.MLPRegressor``'s parameters,
    attributes and methods (``loss="squared_error"`` or ``"poisson"``), trained with jaxnet; and
    ``diagnostics`` as :class:`MLPClassifier`'s."""

    _parameter_constraints: dict = {
        **_SkMLPRegressor._parameter_constraints,
        "diagnostics": ["boolean"],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        diagnostics=False,
    ):
        self.diagnostics = diagnostics
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_X_y(X, y, reset, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @staticmethod
    def _score_function(y, y_pred):
        from sklearn.metrics import r2_score

        return r2_score(y, y_pred)

    def predict(self, X):
        """Predicted values ``(n_samples,)`` or ``(n_samples, n_outputs)``."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input=check_input)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One epoch over ``X``, ``y``."""
        return self._fit(X, y, incremental=True)
