"""The batched training of many ``MLPClassifier``/``MLPRegressor`` fits: the estimator's own
epoch program (:func:`jaxnet.sklearn._fitting.programs`), ``vmap``-ped over the models.

Every model is prepared exactly as the estimator's ``fit`` prepares itself (its data checks,
label binarizer, initial weights drawn from its ``random_state``, then one shuffle per epoch from
the same random state) and trained by the same compiled epoch, with its own rows, numeric
hyper-parameters (``learning_rate_init``, ``alpha``, ``momentum``, ``beta_1``, ``beta_2``,
``epsilon``: arrays on the model axis) and its own learning-rate schedule and stopping rule
(``tol``, ``n_iter_no_change``, ``max_iter``), kept on the host in float64 as ``fit`` keeps
them. A model that stopped is masked: its weights and optimizer state no longer change.
So model ``m`` ends with the weights ``fit`` would give it, up to float rounding of the
batched matrix products.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from sklearn.utils import check_random_state

from jaxnet.compilation import compiled_ahead, run_once_options
from jaxnet.sklearn import _fitting
from jaxnet.sklearn.mlp import STOCHASTIC, MLPClassifier, MLPRegressor
from jaxnet.train import parallel
from jaxnet.train.many import model_slice


class Prepared(NamedTuple):
    """One model, set up as its ``fit`` sets itself up before the first epoch."""

    estimator: Any  # the clone, with fit's attributes up to the initial weights
    training: _fitting.Training
    params: Any
    state: Any
    n: int
    batch_size: int
    rng: np.random.RandomState
    dtype: Any


class _Adapter:
    """``structure``/``prepare`` and ``train`` for :mod:`jaxnet.sklearn._search_plan`."""

    @staticmethod
    def structure(estimator, x, y, train):
        """The program's structure for ``estimator`` fitted on ``x[train], y[train]``, or
        ``None`` when only its own ``fit`` reproduces it (L-BFGS, early stopping on a
        validation split, warm start, sparse input, a fold that lacks a class)."""
        if (
            estimator.solver not in STOCHASTIC
            or estimator.early_stopping
            or estimator.warm_start
            or scipy.sparse.issparse(x)
        ):
            return None
        if isinstance(estimator, MLPClassifier):  # every fold must see every class
            y_all, y_train = np.asarray(y), np.asarray(y)[train]
            if y_all.ndim != 1 or len(np.unique(y_train)) != len(np.unique(y_all)):
                return None
        hidden = tuple(estimator._hidden())
        n_outputs = 1 if np.asarray(y).ndim == 1 else np.asarray(y).shape[1]
        if isinstance(estimator, MLPClassifier):
            n_classes = len(np.unique(y))
            n_outputs = n_classes if n_classes > 2 else 1
        n = len(train)
        batch_size = _batch_size(estimator, n)
        return (
            type(estimator), hidden, estimator.activation, estimator.solver,
            bool(estimator.nesterovs_momentum), getattr(estimator, "loss", None), n_outputs,
            np.shape(x)[1], _fitting.batch_bucket(batch_size, 32),
        )  # fmt: skip

    @staticmethod
    def train(members, mesh=None) -> list:
        """Fitted estimators of ``members`` (:class:`~jaxnet.sklearn._search_plan.Member`),
        trained as one program."""
        return train_mlps(members, mesh)


def _batch_size(estimator, n: int) -> int:
    if estimator.batch_size == "auto":
        return min(200, n)
    return int(np.clip(estimator.batch_size, 1, n))


def prepare(member) -> Prepared:
    """``fit``'s set-up for one member: data checks, targets, initial weights (same draws)."""
    estimator = member.estimator.__class__(**member.estimator.get_params(deep=False))
    x_train, y_train = _rows(member.x, member.train), _rows(member.y, member.train)
    X, y = estimator._validate_input(x_train, y_train, False, reset=True)
    if y.ndim == 1:
        y = y.reshape((-1, 1))
    estimator.n_outputs_ = y.shape[1]
    layer_units = [X.shape[1], *estimator._hidden(), estimator.n_outputs_]
    rng = check_random_state(estimator.random_state)
    estimator._initialize(y, layer_units, X.dtype, rng)
    training = estimator._training()
    params, state = estimator._params(training, estimator._feature_padding(X.shape[1]))
    n = X.shape[0]
    return Prepared(estimator, training, params, state, n, _batch_size(estimator, n), rng, X.dtype)


def _shuffled(sample_idx, rng):
    """``sklearn.utils.shuffle(sample_idx, random_state=rng)``: the same draw, without its
    checks (it runs once per model and epoch)."""
    order = np.arange(len(sample_idx))
    rng.shuffle(order)
    return sample_idx[order]


def _rows(data, rows):
    return data.iloc[rows] if hasattr(data, "iloc") else np.asarray(data)[rows]


def _targets(estimator, y) -> np.ndarray:
    """The whole ``y`` as ``estimator`` (set up on a fold with every class) trains on it."""
    if isinstance(estimator, MLPClassifier):
        t = estimator._label_binarizer.transform(np.asarray(y))
    else:
        t = np.asarray(y, np.float64)
    return (t.reshape(len(t), -1)).astype(np.float32)


_PROGRAMS: dict = {}


def _epoch_program(training):
    """``run((params, state, opt_state), hyper, x, y, rows, weights, active, key)``: one epoch
    of every model (the estimator's epoch program, ``vmap``-ped), models with ``active`` false
    left unchanged; built once per structure. ``key`` is the epoch's (an MLP's step has no
    randomness: the estimator's ``_epoch_key()`` is one constant key, shared)."""
    if training.signature in _PROGRAMS:
        return _PROGRAMS[training.signature]
    epoch = _fitting.programs(training).epoch

    @jax.jit
    def run(carry, hyper, x, y, rows, weights, active, key):
        *new, loss_sum = jax.vmap(epoch, in_axes=(0, 0, 0, 0, None, None, 0, 0, None))(
            *carry, hyper, x, y, rows, weights, key
        )

        def keep(new, old):
            return jnp.where(active.reshape(-1, *(1,) * (new.ndim - 1)), new, old)

        return jax.tree.map(keep, tuple(new), carry), loss_sum

    _PROGRAMS[training.signature] = run
    return run


def _init_optimizers(training, sharding=None):
    """``init(params, hyper)``: the optimizer state of every model (a leading model axis),
    placed with ``sharding``; compiled for speed of compiling (it runs once)."""
    key = ("init", training.signature, sharding)
    if key not in _PROGRAMS:
        init = jax.vmap(lambda params, hyper: training.optimizer(hyper).init(params))
        _PROGRAMS[key] = jax.jit(init, out_shardings=sharding,
                                 compiler_options=run_once_options() or None)  # fmt: skip
    return _PROGRAMS[key]


def train_mlps(members, mesh=None) -> list:
    """The fitted estimator of every member: one vmapped epoch program per epoch for all. The
    program is lowered once the first member is set up, and compiles on a worker thread while
    the others are."""
    first = prepare(members[0])
    training = first.training
    d_pad = first.estimator._feature_padding(first.estimator.n_features_in_)
    n_models = len(members)
    devices = 1 if mesh is None else mesh.devices.size
    padded = -(-n_models // devices) * devices
    take = list(range(n_models)) + [0] * (padded - n_models)
    model_sharding = None if mesh is None else parallel.model_sharded(mesh)
    replicated = None if mesh is None else parallel.replicated(mesh)

    # the data: one block per distinct (preprocessed) x, rows of each model offset into it
    blocks, offsets = [], {}
    for member in members:
        if id(member.x) not in offsets:
            offsets[id(member.x)] = sum(len(b) for b in blocks)
            blocks.append(member.x)
    y_block = _targets(first.estimator, members[0].y)
    # The batches of fit's epoch without its power-of-two padding (which lets one program serve
    # many data sizes; here every model has its own rows anyway): the same examples and weights,
    # up to 40% fewer padded rows computed (digits, batch 200: 8 x 200 rows, not 8 x 256).
    sizes = [(len(m.train), _batch_size(m.estimator, len(m.train))) for m in members]
    n_batches = max(-(-n // b) for n, b in sizes)
    batch_pad = max(b for _, b in sizes)

    def typed(shape, dtype, sharding):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

    def per_model(leaf):
        return typed((padded, *np.shape(leaf)), np.asarray(leaf).dtype, model_sharding)

    params_type, state_type = jax.tree.map(per_model, (first.params, first.state))
    hyper_type = {k: typed((padded,), np.float32, model_sharding)
                  for k in {**training.hyper, "learning_rate": None}}  # fmt: skip
    init_optimizers = _init_optimizers(training, model_sharding)
    opt_type = jax.tree.map(lambda t: typed(t.shape, t.dtype, model_sharding),
                            jax.eval_shape(init_optimizers, params_type, hyper_type))  # fmt: skip
    key = jax.device_put(first.estimator._epoch_key(), replicated)
    run = compiled_ahead(  # compiles on a worker thread while the other models are set up
        _epoch_program(training), (params_type, state_type, opt_type), hyper_type,
        typed((sum(len(b) for b in blocks), d_pad), np.float32, replicated),
        typed((len(blocks) * len(y_block), y_block.shape[1]), np.float32, replicated),
        typed((padded, n_batches, batch_pad), np.int32, model_sharding),
        typed((padded, n_batches, batch_pad), np.float32, model_sharding),
        typed((padded,), np.bool_, model_sharding), typed(key.shape, key.dtype, replicated),
    )  # fmt: skip

    prepared = [first, *(prepare(m) for m in members[1:])]
    x_all = _fitting.pad_rows(np.concatenate([np.asarray(b, np.float32) for b in blocks]),
                              sum(len(b) for b in blocks), d_pad)  # fmt: skip
    y_all = np.concatenate([y_block] * len(blocks))
    params, state = jax.tree.map(
        lambda *a: np.stack(a), *[(prepared[i].params, prepared[i].state) for i in take]
    )
    hypers = [dict(p.training.hyper) for p in prepared]
    lr = np.array([p.estimator._learning_rate_init() for p in prepared])
    hyper_arrays = {k: np.array([h[k] for h in hypers], np.float32) for k in hypers[0]}

    def hyper_of(lr):  # (NumPy: placing it on the models' devices compiles nothing)
        h = dict(hyper_arrays, learning_rate=lr.astype(np.float32))
        return {k: v[take] for k, v in h.items()}

    x_dev, y_dev = jax.device_put((x_all, y_all), replicated)
    # as fit makes it (its init_optimizer program), every model's in one program, made where
    # the models live: op by op, a state compiles a program per operation and leaf shape, and
    # moving it onto the models' devices one per leaf shape (~0.2 s cold for Adam's)
    opt_state = init_optimizers(params, hyper_of(lr))
    carry = (*jax.device_put((params, state), model_sharding), opt_state)

    est = [p.estimator for p in prepared]
    sample_idx = [np.arange(p.n, dtype=int) for p in prepared]
    for e in est:
        e._learning_rate = e._learning_rate_init()
    active = np.ones(n_models, bool)
    global_rows = [m.train + offsets[id(m.x)] for m in members]
    for _ in range(max(e.max_iter for e in est)):
        rows = np.zeros((padded, n_batches, batch_pad), np.int32)
        weights = np.zeros((padded, n_batches, batch_pad), np.float32)
        for m, p in enumerate(prepared):
            if not active[m]:
                continue
            if est[m].shuffle:
                sample_idx[m] = _shuffled(sample_idx[m], p.rng)
            r, w = _fitting.batch_rows(sample_idx[m], p.batch_size)
            used = (-(-p.n // p.batch_size), p.batch_size)
            rows[m, : used[0], : used[1]] = global_rows[m][r[: used[0], : used[1]]]
            weights[m, : used[0], : used[1]] = w[: used[0], : used[1]]
        lr_now = np.array([e._learning_rate for e in est])
        live = np.r_[active, np.zeros(padded - n_models, bool)]
        args = jax.device_put((hyper_of(lr_now), rows, weights, live), model_sharding)
        carry, loss_sum = run(carry, args[0], x_dev, y_dev, *args[1:], key)
        loss_sum = np.asarray(loss_sum)
        for m, p in enumerate(prepared):
            if active[m] and _after_epoch(est[m], float(loss_sum[m]) / p.n, p.n):
                active[m] = False
        if not active.any():
            break

    params, state, opt_state = jax.device_get(carry)
    for m, p in enumerate(prepared):
        est[m]._store(model_slice(params, m), p.dtype, model_slice(state, m))
        est[m]._opt_state = model_slice(opt_state, m)
    return [e if _finite(e) else FIT_ERROR for e in est]


# What ``fit`` raises for non-finite weights; the search records it as that cell's failed fit.
FIT_ERROR = (
    "ValueError: Solver produced non-finite parameter weights. The input data may contain large "
    "values and need to be preprocessed."
)


def _finite(estimator) -> bool:
    return all(np.isfinite(w).all() for w in [*estimator.coefs_, *estimator.intercepts_])


def _after_epoch(estimator, loss: float, n: int) -> bool:
    """``fit``'s bookkeeping after an epoch (no early stopping); ``True`` when it stops."""
    e = estimator
    e.n_iter_ += 1
    e.loss_ = loss
    e.t_ += n
    e.loss_curve_.append(loss)
    e._track_training_loss()
    return e._adjust_learning_rate() == "stop" or e.n_iter_ >= e.max_iter


ADAPTERS = {MLPClassifier: _Adapter, MLPRegressor: _Adapter}
