"""Property tests at the boundaries: for generated shapes, dtypes, label ranges and settings,
``fit``, ``evaluate``, ``predict``, the recipes, the optimizers and checkpoint round-trips either
succeed with finite results (equal to a NumPy reference where there is one) or raise a
``JaxnetError`` naming the offending argument. Nothing else escapes.

Each test computes, independently of jaxnet, which arguments are invalid (``problems``); an error
must name one of them, and no error may come when there are none. Few, small examples: every new
shape compiles again.
"""

import math
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import jaxnet
from jaxnet import checkpoint, losses, optim, recipes
from jaxnet.core import init_model
from jaxnet.errors import JaxnetError
from jaxnet.layers import Dense

BOUNDARY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def mostly(valid, invalid):
    """Valid values three times in four: enough valid runs to check, and every error class."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda ok: valid if ok else invalid)


CLASSES = 3
LOSSES = {
    "regression": losses.mse,
    "binary": losses.binary_cross_entropy,
    "multilabel": losses.binary_cross_entropy,
    "multiclass": losses.sparse_categorical_cross_entropy,
    "one_hot": losses.categorical_cross_entropy,
}
WIDTH = {"regression": 1, "binary": 1, "multilabel": CLASSES, "multiclass": CLASSES, "one_hot": 3}


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _target_problem(task: str, y: np.ndarray) -> bool:
    """Whether ``y`` is not a valid target for ``task`` (the rule of the issue, in NumPy)."""
    if task == "regression":
        return not np.isfinite(y.astype(np.float64)).all()
    if task in ("binary", "multilabel"):
        return not np.isin(y, (0, 1)).all()
    if task == "multiclass":
        return not ((y == np.round(y)).all() and (y >= 0).all() and (y < CLASSES).all())
    rows = y.astype(np.float64)
    return bool((rows < 0).any() or (np.abs(rows.sum(-1) - 1) > 1e-3).any())


def _raised_naming(call, problems: set[str]):
    """``call()``'s result when ``problems`` is empty; else assert it raises a JaxnetError that
    names one of them (and return None)."""
    event("valid" if not problems else "invalid: " + " ".join(sorted(problems)))
    if not problems:
        return call()
    try:
        call()
    except JaxnetError as error:
        assert any(name in str(error) for name in problems), (str(error), problems)
        return None
    raise AssertionError(f"no error, but these arguments are invalid: {problems}")


@st.composite
def targets(draw, task: str, n: int):
    """Targets for ``task``: mostly valid, sometimes a value out of its range, in varied dtypes."""
    width = WIDTH[task]
    if task == "regression":
        values = draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n))
        dtype = draw(st.sampled_from([np.int32, np.float32, np.float64]))
        return np.asarray(values, dtype)
    if task == "one_hot":
        labels = draw(st.lists(st.integers(0, width - 1), min_size=n, max_size=n))
        scale = draw(st.sampled_from([1.0, 1.0, 2.0, -1.0]))
        return np.eye(width, dtype=np.float32)[labels] * scale
    shape = (n, width) if task == "multilabel" else (n,)
    pool = [0, 1] if task != "multiclass" else list(range(CLASSES))
    pool += draw(st.sampled_from([[], [], [2], [-1], [CLASSES]]))
    size = math.prod(shape)
    values = draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size))
    dtype = draw(st.sampled_from([np.int32, np.float32, np.int64]))
    return np.asarray(values, dtype).reshape(shape)


# ----------------------------------------------------------------------------- fit


@BOUNDARY
@given(data=st.data())
def test_fit_trains_to_finite_values_or_names_the_bad_argument(data):
    task = data.draw(st.sampled_from(sorted(LOSSES)), "task")
    n = data.draw(st.sampled_from([3, 6]), "n")
    x = np.random.default_rng(n).normal(size=(n, 2))
    x = data.draw(st.sampled_from([x, x.astype(np.float32).tolist(), x.astype(np.float16)]), "x")
    y = data.draw(targets(task, n), "y")
    batch_size = data.draw(
        mostly(st.sampled_from([1, 3]), st.one_of(st.integers(-1, 8), st.just(2.0))), "batch_size"
    )
    epochs = data.draw(mostly(st.sampled_from([0, 1, 2]), st.sampled_from([-1, 1.5])), "epochs")
    seed = data.draw(mostly(st.integers(0, 2**31 - 1), st.sampled_from(["0", None])), "seed")

    problems = set()
    if not _is_int(batch_size) or not 1 <= batch_size <= n:
        problems.add("batch_size")
    if not _is_int(epochs) or epochs < 0:
        problems.add("epochs")
    if not _is_int(seed):
        problems.add("seed")
    if _target_problem(task, y):
        problems.add("y")

    model = jaxnet.serial(Dense(WIDTH[task]))

    def call():
        return jaxnet.fit(model, LOSSES[task], optax.sgd(0.05), x, y, epochs=epochs,
                          batch_size=batch_size, seed=seed, verbose=0)  # fmt: skip

    result = _raised_naming(call, problems)
    if result is not None:
        ts, history = result
        assert history.epochs == epochs
        assert np.isfinite(history.history.get("loss", [])).all()
        assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(ts.params))


# ----------------------------------------------------------------------------- evaluate, predict

MODEL = jaxnet.serial(Dense(CLASSES))
STATE = jaxnet.create_train_state(MODEL, optax.sgd(0.1), (2,), jax.random.key(0))


def _reference_logits(x):
    w, b = (np.asarray(STATE.params["dense_0"][k], np.float64) for k in ("w", "b"))
    return np.asarray(x, np.float64) @ w + b


@BOUNDARY
@given(data=st.data())
def test_evaluate_and_predict_match_numpy_or_name_the_bad_argument(data):
    n = data.draw(st.sampled_from([0, 2, 5]), "n")
    x = np.random.default_rng(n).normal(size=(n, 2)).astype(np.float32)
    if n and data.draw(st.sampled_from([False, False, False, True]), "nan"):
        x[-1, 0] = np.nan
    y = np.asarray(data.draw(st.lists(st.integers(-1, CLASSES), min_size=n, max_size=n)), int)
    batch_size = data.draw(mostly(st.sampled_from([1, 4, 256]), st.sampled_from([0, 2.5])))
    as_list = data.draw(st.booleans(), "as_list")
    x_in, y_in = (x.tolist(), y.tolist()) if as_list else (x, y)

    problems = set()
    if n == 0 or not np.isfinite(x).all():
        problems.add("x")
    if not _is_int(batch_size) or batch_size < 1:
        problems.add("batch_size")
    args = (MODEL, STATE.params, STATE.state)
    predicted = _raised_naming(
        lambda: jaxnet.predict(*args, x_in, batch_size=batch_size), set(problems)
    )
    if predicted is not None:
        np.testing.assert_allclose(predicted, _reference_logits(x), rtol=1e-5, atol=1e-5)

    if n and ((y < 0) | (y >= CLASSES)).any():
        problems.add("y")
    loss = losses.sparse_categorical_cross_entropy

    def call():
        return jaxnet.evaluate(*args, x_in, y_in, loss, [jaxnet.metrics.accuracy],
                               batch_size=batch_size)  # fmt: skip

    logs = _raised_naming(call, problems)
    if logs is not None:
        logits = _reference_logits(x)
        log_p = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1))[:, None]
        log_p -= logits.max(1, keepdims=True)
        np.testing.assert_allclose(logs["loss"], -log_p[np.arange(n), y].mean(), rtol=1e-5)
        np.testing.assert_allclose(logs["accuracy"], (logits.argmax(1) == y).mean())


# ----------------------------------------------------------------------------- recipes


@BOUNDARY
@given(
    task=mostly(
        st.sampled_from(["binary", "multilabel", "multiclass", "regression"]), st.just("ordinal")
    ),
    n_classes=mostly(st.integers(1, 4), st.sampled_from([-1, 0, 2.5, "3"])),
    hidden=mostly(
        st.lists(st.integers(1, 4), max_size=2),
        st.one_of(st.lists(st.sampled_from([-1, 0, 3.0, 2]), min_size=1, max_size=2), st.just(4)),
    ),
    dropout=mostly(st.floats(0, 0.9), st.sampled_from([-0.1, 1.0, 1.5, math.nan])),
    activation=mostly(st.sampled_from(["relu", "tanh", "selu"]), st.just("nope")),
)
def test_recipes_build_models_of_the_right_width_or_name_the_bad_argument(
    task, n_classes, hidden, dropout, activation
):
    problems = set()
    count_ok = _is_int(n_classes) and n_classes >= 1
    if not count_ok:
        problems |= {"n_classes", "n_outputs"}
    elif (task == "binary" and n_classes not in (1, 2)) or (task == "multiclass" and n_classes < 2):
        problems.add("n_classes")
    if not isinstance(hidden, list):
        problems.add("hidden")
    elif not all(_is_int(h) and h >= 1 for h in hidden):
        problems.add("hidden[")
    if not 0 <= dropout < 1:
        problems.add("dropout")
    if activation == "nope":
        problems.add("activation")
    if task == "ordinal":
        problems.add("task")

    def call():
        if task == "regression":
            return recipes.regression_mlp(n_classes, hidden, activation, dropout=dropout)
        return recipes.classifier_mlp(n_classes, hidden, activation, task=task, dropout=dropout)

    recipe = _raised_naming(call, problems)
    if recipe is not None:

        def outputs(key):
            params, state = init_model(recipe.model, key, (2,))
            return recipe.model.apply(params, state, jnp.zeros((1, 2)))[0]

        shape = jax.eval_shape(outputs, jax.random.key(0)).shape
        assert shape == (1, 1 if task == "binary" else n_classes)


# ----------------------------------------------------------------------------- optimizers

EXTRA = {  # each optimizer's own hyper-parameters that have a range
    "sgd": ["momentum"], "momentum": ["momentum"], "nesterov": ["momentum"],
    "adagrad": ["eps"], "rmsprop": ["decay", "eps", "momentum"], "adadelta": ["rho", "eps"],
    "adam": ["b1", "b2", "eps"], "adamw": ["b1", "weight_decay"], "nadam": ["b1", "b2"],
    "adamax": ["b1", "eps"], "lion": ["b1", "b2"], "lamb": ["b1", "weight_decay"],
}  # fmt: skip


@BOUNDARY
@given(
    name=st.sampled_from(sorted(EXTRA)),
    learning_rate=mostly(
        st.floats(0, 1), st.sampled_from([-1e-3, -1.0, math.nan, math.inf, "0.1"])
    ),
    extra=st.one_of(st.none(), st.floats(-0.5, 1.5), st.just(math.nan)),
    data=st.data(),
)
def test_optimizers_update_finitely_or_name_the_bad_argument(name, learning_rate, extra, data):
    kwargs = {}
    if extra is not None:
        kwargs[data.draw(st.sampled_from(EXTRA[name]), "argument")] = extra
    problems = set(kwargs)  # a value out of its range must be refused by its name
    lr_ok = isinstance(learning_rate, float) and 0 <= learning_rate < math.inf
    if not lr_ok:
        problems.add("learning_rate")

    def call():
        opt = optim.get(name, learning_rate, **kwargs)
        params = {"w": jnp.array([1.0, -2.0, 0.5])}
        grads = {"w": jnp.array([0.3, -1.0, 2.0])}
        return opt.update(grads, opt.init(params), params)[0]

    if lr_ok and kwargs:  # a valid value may pass: then the update must be finite
        try:
            updates = call()
        except JaxnetError as error:
            assert any(k in str(error) for k in problems), str(error)
            return
    else:
        updates = _raised_naming(call, problems)
    if updates is not None:
        assert np.isfinite(updates["w"]).all()


# ----------------------------------------------------------------------------- checkpoints

DTYPES = [np.float32, np.float16, jnp.bfloat16, np.int32, np.int8, np.uint8, np.bool_]
leaves = st.builds(
    lambda dtype, shape, seed: np.random.default_rng(seed).normal(size=shape).astype(dtype),
    st.sampled_from(DTYPES),
    st.lists(st.integers(0, 3), max_size=3).map(tuple),
    st.integers(0, 2**16),
)
names = st.text("abz_/", min_size=1, max_size=3)
trees = st.recursive(
    st.one_of(leaves, st.integers(0, 9).map(jax.random.key)),
    lambda children: st.one_of(
        st.dictionaries(names, children, max_size=3), st.lists(children, max_size=2).map(tuple)
    ),
    max_leaves=6,
)


def _bits(leaf):
    if jnp.issubdtype(jnp.asarray(leaf).dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(leaf)), "key"
    leaf = np.asarray(leaf)
    return leaf.reshape(-1).view(np.uint8), leaf.dtype


@BOUNDARY
@given(tree=trees)
def test_checkpoints_round_trip_bit_exactly_or_say_why_not(tree):
    with tempfile.TemporaryDirectory() as directory:
        try:
            path = checkpoint.save(directory, "ckpt", tree, epoch=1)
        except JaxnetError as error:  # e.g. two leaves with the same path "a/b"
            assert "path" in str(error)
            return
        restored = checkpoint.load(path, tree)
    assert restored.epoch == 1
    assert jax.tree.structure(restored.tree) == jax.tree.structure(tree)
    for saved, loaded in zip(jax.tree.leaves(tree), jax.tree.leaves(restored.tree), strict=True):
        (a, kind_a), (b, kind_b) = _bits(saved), _bits(loaded)
        assert kind_a == kind_b and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
