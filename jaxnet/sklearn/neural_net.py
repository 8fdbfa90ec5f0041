"""``NeuralNetClassifier`` and ``NeuralNetRegressor``: any jaxnet model as a scikit-learn estimator.

skorch's role for jaxnet: the model (a CNN, an RNN, a wide-and-deep network) is a constructor
parameter, and the training loop is the MLP estimators' (the same batches, stopping rule, early
stopping and ``partial_fit``; see :mod:`jaxnet.sklearn.mlp`). The estimator adds the output
layer (``head=True``: a ``Dense`` with one unit per class, label or target) and the matching
loss, so one model body serves every task.

Nested parameters, for ``set_params`` and grids: ``optimizer__<arg>`` is passed to the optimizer
(``optimizer__momentum=0.9``; numeric values are arrays inside the compiled step, so a grid over
them compiles once; ``optimizer__learning_rate`` is ``learning_rate``), and ``model__<arg>``
replaces an argument of the model's recorded constructor call (``model__hidden=(64,)`` for
``model=recipes.mlp(...)``; the model must be describable by :func:`jaxnet.describe`). They are
kept in the constructor parameters ``optimizer_options`` and ``model_options`` (dicts), so
``clone`` and ``get_params`` carry them. A pickled estimator stores the model's description, not
its functions.

>>> import numpy as np
>>> from jaxnet import Activation, Dense, serial
>>> from jaxnet.sklearn import NeuralNetClassifier
>>> X = np.random.RandomState(0).normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
>>> body = serial(Dense(8), Activation("relu"))
>>> net = NeuralNetClassifier(body, max_iter=50, learning_rate=0.05,
...                           random_state=0).fit(X, y)
>>> net.score(X, y) > 0.9
True
"""

from __future__ import annotations

import json
from numbers import Integral, Real

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from jaxnet import optim
from jaxnet.activations import Activation
from jaxnet.core import Layer, init_model, serial
from jaxnet.description import build, describe
from jaxnet.layers import Dense
from jaxnet.regularizers import l2
from jaxnet.sklearn import _fitting
from jaxnet.sklearn._fitting import Training
from jaxnet.sklearn.mlp import OUTPUTS, BaseMLP, MLPClassifier, MLPRegressor

_PREFIXES = ("model", "optimizer")
_DESCRIPTION = "__jaxnet_description__"


def _default_body() -> Layer:
    """The body used when ``model=None``: one hidden layer of 100 ReLU units (the MLP's)."""
    return serial(Dense(100), Activation("relu"), name="body")


def _per_example(loss):
    """A jaxnet loss (mean over examples) as ``(outputs, y) -> (batch,)``."""

    def per_example(outputs, y):
        return loss(outputs, y, reduction="none")

    return per_example


class _BaseNeuralNet(BaseMLP):
    """Parameters and hooks shared by the two ``NeuralNet`` estimators."""

    _parameter_constraints: dict = {
        "model": [Layer, dict, None],
        "loss": [str, callable, None],
        "optimizer": [StrOptions({*optim.NAMES, "lbfgs"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "optimizer_options": [dict, None],
        "model_options": [dict, None],
        "head": ["boolean"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "diagnostics": ["boolean"],
    }

    def __init__(
        self,
        model=None,
        loss=None,
        optimizer="adam",
        *,
        optimizer_options=None,
        model_options=None,
        learning_rate=0.001,
        alpha=0.0,
        batch_size="auto",
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        head=True,
        warm_start=False,
        verbose=False,
        max_fun=15000,
        diagnostics=False,
    ):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.optimizer_options = optimizer_options
        self.model_options = model_options
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.head = head
        self.warm_start = warm_start
        self.verbose = verbose
        self.max_fun = max_fun
        self.diagnostics = diagnostics

    # ----- nested parameters (skorch's convention): optimizer__<arg>, model__<arg>
    def _nested(self, prefix: str) -> dict:
        options = self.optimizer_options if prefix == "optimizer" else self.model_options
        return dict(options or {}) if isinstance(options, dict) else {}

    def get_params(self, deep=True):
        """The constructor's parameters; with ``deep``, also ``optimizer__<arg>`` (including
        ``optimizer__learning_rate``) and ``model__<arg>`` for each option set."""
        params = super().get_params(deep=deep)
        if deep:
            params["optimizer__learning_rate"] = self.learning_rate
            for prefix in _PREFIXES:
                params.update({f"{prefix}__{k}": v for k, v in self._nested(prefix).items()})
        return params

    def set_params(self, **params):
        """Set parameters; ``optimizer__<arg>`` and ``model__<arg>`` update
        ``optimizer_options`` and ``model_options`` (new dicts: a clone's are not changed)."""
        plain = {}
        options = {prefix: self._nested(prefix) for prefix in _PREFIXES}
        changed = set()
        for key, value in params.items():
            prefix, _, arg = key.partition("__")
            if key == "optimizer__learning_rate":
                plain["learning_rate"] = value
            elif arg and prefix in _PREFIXES:
                options[prefix][arg] = value
                changed.add(prefix)
            else:
                plain[key] = value
        for prefix in changed:
            plain[f"{prefix}_options"] = options[prefix]
        return super().set_params(**plain) if plain else self

    # ----- pickling: the model as its description
    def __getstate__(self):
        state = super().__getstate__()
        if isinstance(state.get("model"), Layer):
            state = {**state, "model": {_DESCRIPTION: describe(state["model"])}}
        return state

    def __setstate__(self, state):
        model = state.get("model")
        if isinstance(model, dict) and _DESCRIPTION in model:
            state = {**state, "model": build(model[_DESCRIPTION])}
        super().__setstate__(state)

    # ----- what is trained
    def _body(self) -> Layer:
        model = _default_body() if self.model is None else self.model
        changes = self._nested("model")
        if isinstance(model, dict) or changes:
            description = model if isinstance(model, dict) else describe(model)
            if changes:
                description = json.loads(json.dumps(description))
                args = description["model"].setdefault("args", {})
                args.update({k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()})
            model = build(description)
        return model

    def _training(self, n_outputs: int | None = None, out_activation: str | None = None):
        """The :class:`~jaxnet.sklearn._fitting.Training` of these parameters (see the module)."""
        from jaxnet import losses

        n_outputs = self.n_outputs_ if n_outputs is None else n_outputs
        out = self.out_activation_ if out_activation is None else out_activation
        body = self._body()
        model = serial(body, Dense(n_outputs), name="net") if self.head else body
        canonical, output = OUTPUTS[out]
        loss = canonical if self.loss is None else _per_example(losses.get(self.loss))
        name = "adam" if self.optimizer == "lbfgs" else self.optimizer
        options = self._nested("optimizer")
        numeric = {k: float(v) for k, v in options.items() if _is_number(v)}
        static = {k: v for k, v in options.items() if k not in numeric}

        def make_optimizer(h):
            return optim.get(name, h["learning_rate"], **{k: h[k] for k in numeric}, **static)

        try:
            model_key = json.dumps(describe(model), sort_keys=True)
        except Exception:  # an undescribable model: its identity (the cache keeps it alive)
            model_key = id(model)
        loss_key = self.loss if isinstance(self.loss, str | None) else id(self.loss)
        static_key = tuple(sorted((k, repr(v)) for k, v in static.items()))
        signature = ("net", model_key, loss_key, out, name, tuple(sorted(numeric)), static_key)
        hyper = {"alpha": self.alpha, "learning_rate": self.learning_rate, **numeric}
        return Training(model, loss, l2(0.5), make_optimizer, hyper, output, signature)

    # ----- the loop's hooks
    _fitted_attribute = "params_"

    def _hidden(self) -> list[int]:
        return []

    def _stochastic(self) -> bool:
        return self.optimizer != "lbfgs"

    def _learning_rate_init(self) -> float:
        return float(self.learning_rate)

    def _schedule(self) -> str:
        return "constant"

    def _feature_padding(self, n_features: int) -> None:
        return None

    def _weights(self) -> list:
        return [np.asarray(a) for a in jax.tree.leaves(self.params_)]

    def _layer_units(self, X) -> tuple:
        return X.shape[1:]

    def _init_weights(self, input_shape, dtype, rng):
        key = jax.random.key(rng.randint(np.iinfo(np.int32).max))
        self._key_data = np.asarray(jax.random.key_data(jax.random.fold_in(key, 1)))
        model = self._training(self.n_outputs_, self.out_activation_).model
        params, state = init_model(model, key, tuple(input_shape))
        self.params_ = jax.tree.map(np.asarray, params)
        self.state_ = jax.tree.map(np.asarray, state)

    def _epoch_key(self):
        return jax.random.fold_in(jax.random.wrap_key_data(self._key_data), self.t_)

    def _params(self, training: Training, n_features_padded=None):
        to_device = jax.tree.map(jnp.asarray, (self.params_, self.state_))
        return to_device

    def _store(self, params, dtype, state=None):
        self.params_ = jax.tree.map(np.asarray, params)
        if state is not None:
            self.state_ = jax.tree.map(np.asarray, state)

    def _forward(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, dtype=(np.float64, np.float32), allow_nd=True, reset=False)
        training = self._training()
        out = _fitting.predict(training, *self._params(training), X)
        return out.reshape(len(X), -1).astype(X.dtype)

    def _validate_X_y(self, X, y, reset, **options):
        return validate_data(
            self, X, y, multi_output=True, dtype=(np.float64, np.float32), allow_nd=True,
            reset=reset, **options,
        )  # fmt: skip

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


class NeuralNetClassifier(ClassifierMixin, _BaseNeuralNet):
    """A jaxnet model as a classifier: binary, multiclass (softmax) and multilabel targets.

    Args:
      model: the network body, a jaxnet :class:`~jaxnet.Layer` (or its :func:`jaxnet.describe`
        dict); ``None``: one hidden layer of 100 ReLU units. Inputs may have any shape
        (``(n, height, width, channels)`` for a CNN).
      loss: ``None`` (softmax cross-entropy, or logistic for binary/multilabel), or a
        :mod:`jaxnet.losses` name or function taking logits and one-hot targets.
      optimizer: a :data:`jaxnet.optim.NAMES` name, or ``"lbfgs"`` (full batch); its other
        arguments as ``optimizer__<arg>``.
      learning_rate, alpha, batch_size, max_iter, shuffle, random_state, tol, n_iter_no_change,
        early_stopping, validation_fraction, warm_start, verbose, max_fun: as in
        :class:`~jaxnet.sklearn.MLPClassifier` (``alpha``: L2 on the kernels, default 0).
      head: append ``Dense(n_classes)`` (``Dense(1)`` for binary) to ``model``.
      optimizer_options, model_options: the nested ``optimizer__<arg>`` and ``model__<arg>``
        parameters (see the module).
      diagnostics: as :class:`~jaxnet.sklearn.MLPClassifier`'s.

    Fitted: ``params_``, ``state_`` (the model's pytrees), ``classes_``, ``loss_``,
    ``loss_curve_``, ``n_iter_``, ``t_``, ``n_outputs_``, ``out_activation_`` and the early
    stopping attributes of the MLP.
    """

    _validate_input = MLPClassifier._validate_input
    _score_function = MLPClassifier._score_function
    predict = MLPClassifier.predict
    _predict = MLPClassifier._predict
    partial_fit = MLPClassifier.partial_fit
    predict_proba = MLPClassifier.predict_proba
    predict_log_proba = MLPClassifier.predict_log_proba

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class NeuralNetRegressor(RegressorMixin, _BaseNeuralNet):
    """A jaxnet model as a regressor (squared error by default; one output per target column).

    Arguments as :class:`NeuralNetClassifier`'s; ``loss`` is ``None`` (half squared error) or a
    :mod:`jaxnet.losses` name or function of predictions and targets.
    """

    _validate_input = MLPRegressor._validate_input
    _score_function = MLPRegressor._score_function
    predict = MLPRegressor.predict
    _predict = MLPRegressor._predict
    partial_fit = MLPRegressor.partial_fit
