"""Robustness: property-based checks (shapes, losses, optimizers), bad CSV input, a NaN'ing run."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnet import losses, optim, recipes
from jaxnet.core import serial
from jaxnet.datasets import DATASETS, load_csv, load_dataset, standardize, train_test_split
from jaxnet.errors import ConfigError, DataError
from jaxnet.layers import Dense
from jaxnet.train.fit import fit

FAST = settings(max_examples=12, deadline=None)
# Few distinct shapes: every new shape compiles JAX ops again, and the values are what vary.
dims = st.sampled_from([1, 3])


# ----------------------------------------------------------------------------- shapes


@FAST
@given(leading=st.lists(dims, min_size=0, max_size=2), features=dims, units=dims, batch=dims)
def test_dense_shape_inference_matches_the_forward_pass(leading, features, units, batch):
    layer = Dense(units)
    input_shape = (*leading, features)
    out_shape, params, state = _abstract_init(layer, input_shape)
    assert out_shape == (*leading, units) and state == {}
    assert params["w"].shape == (features, units) and params["b"].shape == (units,)
    y = jax.eval_shape(
        lambda p, x: layer.apply(p, state, x)[0], params, _zeros(batch, *input_shape)
    )
    assert y.shape == (batch, *out_shape)


def _abstract_init(layer, input_shape):
    """``layer.init`` traced abstractly (shapes only, nothing computed or compiled)."""
    found = {}

    def init(key):
        found["out_shape"], params, state = layer.init(key, input_shape)
        return params, state

    params, state = jax.eval_shape(init, jax.random.key(0))
    return found["out_shape"], params, state


def _zeros(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


@FAST
@given(features=dims, widths=st.lists(dims, min_size=1, max_size=4), batch=dims)
def test_serial_chains_shapes_and_names_children(features, widths, batch):
    layers = []
    for units in widths:
        layers += [Dense(units), jax.nn.relu]
    model = serial(*layers)
    out_shape, params, state = _abstract_init(model, (features,))
    assert out_shape == (widths[-1],)
    fan_in = [features, *widths[:-1]]
    for i, (n_in, n_out) in enumerate(zip(fan_in, widths, strict=True)):
        assert params[f"dense_{2 * i}"]["w"].shape == (n_in, n_out)
        assert params[f"relu_{2 * i + 1}"] == {}
    y = jax.eval_shape(lambda p, x: model.apply(p, state, x)[0], params, _zeros(batch, features))
    assert y.shape == (batch, widths[-1])


# ----------------------------------------------------------------------------- losses

finite = st.floats(-5.0, 5.0, allow_nan=False, allow_subnormal=False, width=32)


def _array(draw, shape, elements=finite):
    size = int(np.prod(shape))
    values = draw(st.lists(elements, min_size=size, max_size=size))
    return np.asarray(values, np.float32).reshape(shape)


@st.composite
def regression_batch(draw):
    shape = (draw(dims), draw(dims))
    return _array(draw, shape), _array(draw, shape)


@st.composite
def classification_batch(draw):
    n, k = draw(dims), draw(st.sampled_from([2, 4]))
    logits = _array(draw, (n, k))
    labels = np.asarray(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), np.int32)
    return logits, labels


REGRESSION = [losses.mean_squared_error, losses.mean_absolute_error, losses.huber]


@FAST
@given(batch=regression_batch())
def test_regression_losses_nonnegative_zero_at_perfect_and_reductions_agree(batch):
    predictions, targets = batch
    n = predictions.shape[0]
    for loss in REGRESSION:
        per_example = loss(predictions, targets, reduction="none")
        assert per_example.shape == (n,) and bool(jnp.all(per_example >= 0))
        np.testing.assert_allclose(
            loss(predictions, targets), per_example.mean(), rtol=1e-5, atol=1e-6
        )
        total = loss(predictions, targets, reduction="sum")
        np.testing.assert_allclose(total, per_example.sum(), rtol=1e-5, atol=1e-5)
        assert float(loss(targets, targets)) == 0.0
    # MSE against a NumPy loop over examples and components.
    expected = np.mean([np.mean((p - t) ** 2) for p, t in zip(predictions, targets, strict=True)])
    mse = losses.mean_squared_error(predictions, targets)
    np.testing.assert_allclose(mse, expected, rtol=1e-5, atol=1e-7)


@jax.jit
def _cross_entropies(logits, labels, one_hot):
    """Every cross-entropy the test below checks, as one program (a new shape compiles one
    program, not each operation on its own)."""
    return {
        "sparse": losses.sparse_categorical_cross_entropy(logits, labels, reduction="none"),
        "dense": losses.categorical_cross_entropy(logits, one_hot, reduction="none"),
        "reference": -jax.nn.log_softmax(logits)[jnp.arange(len(labels)), labels],  # jax.nn
        "total": losses.sparse_categorical_cross_entropy(logits, labels, reduction="sum"),
        "certain": losses.categorical_cross_entropy(one_hot, one_hot, from_logits=False),
        "binary": losses.binary_cross_entropy(logits, (one_hot > 0).astype(jnp.float32),
                                              reduction="none"),
        "certain_binary": losses.binary_cross_entropy(one_hot, one_hot, from_logits=False),
    }  # fmt: skip


@FAST
@given(batch=classification_batch())
def test_cross_entropies_nonnegative_consistent_and_zero_at_certainty(batch):
    logits, labels = batch
    n, k = logits.shape
    one_hot = np.eye(k, dtype=np.float32)[labels]
    out = jax.tree.map(np.asarray, _cross_entropies(logits, labels, one_hot))
    sparse = out["sparse"]
    assert sparse.shape == (n,) and bool(np.all(sparse >= 0))
    chex.assert_trees_all_close(sparse, out["dense"], rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(sparse, out["reference"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["total"], sparse.sum(), rtol=1e-5, atol=1e-5)
    # Perfect, certain predictions (probabilities, not logits) cost ~0 (only the log clip).
    assert 0.0 <= float(out["certain"]) < 1e-5
    assert out["binary"].shape == (n,) and bool(np.all(out["binary"] >= 0))
    assert 0.0 <= float(out["certain_binary"]) < 1e-5


# ----------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "optax_sgd": lambda lr: optax.sgd(lr),
    "optax_momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "optax_adam": lambda lr: optax.adam(lr),
    "optax_rmsprop": lambda lr: optax.rmsprop(lr),
    "jaxnet_sgd": lambda lr: optim.sgd(lr),
    "jaxnet_adam": lambda lr: optim.adam(lr),
    "jaxnet_rmsprop": lambda lr: optim.rmsprop(lr),
}


@st.composite
def params_and_grads(draw):
    shape = (draw(dims), draw(dims))
    return {"w": _array(draw, shape), "b": _array(draw, shape[1:])}, {
        "w": _array(draw, shape), "b": _array(draw, shape[1:])}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@FAST
@given(tree=params_and_grads(), lr=st.floats(1e-4, 1.0))
def test_optimizer_invariants(name, tree, lr):
    params, grads = tree
    optimizer = OPTIMIZERS[name](lr)
    # optax's adam is not strict-clean (float ** int32 in its bias correction)
    promotion = "strict" if isinstance(optimizer, optim.GradientTransformation) else "standard"
    with jax.numpy_dtype_promotion(promotion):
        state = optimizer.init(params)
        updates, new_state = optimizer.update(grads, state, params)
        zero_updates, _ = optimizer.update(jax.tree.map(jnp.zeros_like, grads), state, params)
    # Updates mirror the params; the state keeps its structure, shapes and dtypes.
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
    chex.assert_trees_all_equal_structs(new_state, state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    # A zero gradient from a fresh state moves nothing.
    chex.assert_trees_all_close(zero_updates, jax.tree.map(jnp.zeros_like, params), atol=0)
    # The first update never points uphill: <update, grad> <= 0.
    pairs = zip(jax.tree.leaves(updates), jax.tree.leaves(grads), strict=True)
    inner = sum(float(np.vdot(u, g)) for u, g in pairs)
    assert float(inner) <= 1e-6
    if name.endswith("_sgd"):  # plain SGD is exactly -lr * g
        chex.assert_trees_all_close(
            updates, jax.tree.map(lambda g: -lr * g, grads), rtol=1e-6, atol=1e-37
        )


@FAST
@given(tree=params_and_grads(), lr=st.floats(1e-4, 0.5))
def test_jaxnet_adam_matches_optax_adam_over_three_steps(tree, lr):
    params, grads = tree
    ours, theirs = optim.adam(lr), optax.adam(lr)
    p_ours, p_theirs = params, params
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    for scale in (1.0, -0.5, 2.0):
        g = jax.tree.map(lambda a, s=scale: a * s, grads)
        u_ours, s_ours = ours.update(g, s_ours, p_ours)
        p_ours = optax.apply_updates(p_ours, u_ours)
        with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
            u_theirs, s_theirs = theirs.update(g, s_theirs, p_theirs)
            p_theirs = optax.apply_updates(p_theirs, u_theirs)
    # float32 rounding of three steps of size ~lr: relative 1e-4 of a step.
    chex.assert_trees_all_close(p_ours, p_theirs, rtol=1e-4, atol=1e-4 * lr)


# ----------------------------------------------------------------------------- CSV input


def _csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "x1,x2,label\n1.0,2.0,a\n2.0,1.5,b\n3.0,0.5,a\n4.0,1.0,b\n"


def test_load_csv_reads_features_and_text_labels(tmp_path):
    data = load_csv(_csv(tmp_path, GOOD), "label")
    np.testing.assert_array_equal(
        data.x, np.array([[1, 2], [2, 1.5], [3, 0.5], [4, 1]], np.float32)
    )
    np.testing.assert_array_equal(data.y, [0, 1, 0, 1])
    assert (data.task, data.class_names, data.feature_names) == ("binary", ("a", "b"), ("x1", "x2"))
    numeric = load_csv(_csv(tmp_path, "a,y\n1,0.5\n2,1.25\n3,2\n", "r.csv"), "y")
    assert numeric.task == "regression" and numeric.y.dtype == np.float32
    np.testing.assert_array_equal(numeric.y, [0.5, 1.25, 2.0])
    labels = load_csv(_csv(tmp_path, "a,y\n1,3\n2,7\n3,5\n4,3\n", "c.csv"), "y")
    assert labels.task == "multiclass" and labels.class_names == ("3", "5", "7")
    np.testing.assert_array_equal(labels.y, [0, 2, 1, 0])


BAD_CSV = [
    ("", "label", "is empty"),
    ("x1,x2,label\n", "label", "header but no data rows"),
    (GOOD, "lable", "target column 'lable' is not in .*did you mean 'label'"),
    (GOOD, "price", r"its columns are \['x1', 'x2', 'label'\]"),
    ("x1,x2,label\n1,,a\n2,NA,b\n3,1,a\n", "label",
     r"missing values in column\(s\) 'x2': 2 \(first on line 2\)"),
    ("x1,x2,label\n1,2,a\n2,3,\n", "label", r"'label': 1 \(first on line 3\)"),
    ("x1,city,label\n1,Paris,a\n2,Rome,b\n", "label",
     "line 2: column 'city' is not numeric.*'Paris'"),
    ("x1,x2,label\n1,2,a\n2,3\n", "label", "line 3: 2 fields, but the header has 3"),
    ("x1,x1,label\n1,2,a\n2,3,b\n", "label", r"duplicate column names \['x1'\]"),
    ("x1,x2,label\n1,inf,a\n2,3,b\n", "label",
     "line 2: column 'x2' holds 'inf'; values must be finite"),
    ("label\na\nb\n", "label", "only the target column"),
    ("x1,label\n1,a\n2,a\n", "label", "single value"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "target", "message"), BAD_CSV)
def test_bad_csv_input_gives_the_documented_error(tmp_path, text, target, message):
    with pytest.raises(DataError, match=message):
        load_csv(_csv(tmp_path, text), target)


def test_bad_csv_task_and_path_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "missing.csv", "y")
    with pytest.raises(DataError, match="is a directory"):
        load_csv(tmp_path, "y")
    with pytest.raises(DataError, match="regression needs numbers"):
        load_csv(_csv(tmp_path, GOOD), "label", task="regression")
    with pytest.raises(DataError, match="exactly 2 values"):
        load_csv(_csv(tmp_path, "a,y\n1,1\n2,2\n3,3\n", "three.csv"), "y", task="binary")
    with pytest.raises(ConfigError, match="task must be one of"):
        load_csv(_csv(tmp_path, GOOD), "label", task="clustering")
    (tmp_path / "latin1.csv").write_bytes("x,y\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        load_csv(tmp_path / "latin1.csv", "y")


def test_bundled_datasets_and_helpers():
    sizes = {"digits": (1797, 64, 10), "breast_cancer": (569, 30, 2), "iris": (150, 4, 3),
             "wine": (178, 13, 3), "diabetes": (442, 10, 0)}  # fmt: skip
    assert set(DATASETS) == set(sizes)
    for name, (n, d, k) in sizes.items():
        data = load_dataset(name)
        assert data.x.shape == (n, d) and data.x.dtype == np.float32 and data.n_classes == k
        assert data.y.dtype == (np.float32 if k == 0 else np.int32)
    with pytest.raises(ConfigError, match="did you mean 'digits'"):
        load_dataset("digit")
    x = np.arange(20, dtype=np.float32).reshape(10, 2) * [1.0, 0.0] + [0.0, 3.0]
    (x_train, y_train), (x_test, y_test) = train_test_split(x, np.arange(10), 0.3, seed=1)
    assert len(x_test) == 3 and sorted([*y_train, *y_test]) == list(range(10))
    train_scaled, test_scaled, (mean, std) = standardize(x_train, x_test)
    np.testing.assert_allclose(train_scaled.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(train_scaled[:, 0].std(), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(train_scaled[:, 1], 0.0)  # constant column: centred, not divided
    expected = (x_test[:, 0] - x_train[:, 0].mean()) / x_train[:, 0].std()
    np.testing.assert_allclose(test_scaled[:, 0], expected, rtol=1e-5)
    with pytest.raises(DataError, match="both must be at least 1"):
        train_test_split(x, np.arange(10), 0.01)


# ----------------------------------------------------------------------------- faults in training


def test_non_finite_guard_names_the_step_and_layer(capsys):
    recipe = recipes.classifier_mlp(3, hidden=(8,))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    x[37] = 3e38  # finite, but x @ w overflows to inf in the first layer
    # No shuffling, batches of 8: example 37 is in batch 5 (steps 0..4), i.e. step 4 of epoch 1.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ts, history = fit(recipe.model, recipe.loss, optax.sgd(0.01), x, y, epochs=2, batch_size=8,
                          shuffle=False, verbose=0)  # fmt: skip
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "epoch 1" in messages[0] and "first at step 4 (batch 5 of this epoch)" in messages[0]
    assert "first layer with a non-finite output was dense_0" in messages[0]
    assert history.epochs == 0 and int(ts.step) == 0  # the state from before the failed epoch
    assert capsys.readouterr() == ("", "")  # verbose=0 prints nothing
