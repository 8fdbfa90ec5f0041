"""What jaxnet checks before training: targets by the loss's kind, data types at the door, and the
types of fit's arguments. Each case either runs (and then equals the run on the plain NumPy data it
stands for) or raises a JaxnetError naming the argument."""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet import datasets, losses, metrics, optim, recipes
from jaxnet.errors import (
    ArgumentTypeError,
    ConfigError,
    DataError,
    JaxnetError,
    OptimizerError,
    ShapeError,
    check_int,
)
from jaxnet.layers import Dense
from jaxnet.train.arrays import to_numpy
from jaxnet.train.data import match_targets
from jaxnet.train.options import check as check_arguments

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3)).astype(np.float32)
LABELS = np.arange(12) % 3
BITS = (np.arange(12) % 2).astype(np.int32)


def _fit(model, loss, x, y, **options):
    options = {"epochs": 1, "batch_size": 4, "verbose": 0} | options
    return jaxnet.fit(model, loss, optax.sgd(0.1), x, y, **options)


def _same_params(a, b):
    for left, right in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(left, right)


# ----------------------------------------------------------------------------- the loss table


def test_every_jaxnet_loss_has_a_kind_of_targets_and_partials_keep_it():
    for name in ("mse", "mae", "huber"):
        assert losses.target_kind(losses.get(name)) == "real"
    assert losses.target_kind(losses.binary_cross_entropy) == "binary"
    assert losses.target_kind(losses.sparse_categorical_cross_entropy) == "classes"
    assert losses.target_kind(losses.nll) == "classes"
    assert losses.target_kind(losses.categorical_cross_entropy) == "distribution"
    assert losses.target_kind(losses.hinge) == losses.target_kind(losses.squared_hinge) == "signs"
    partial = functools.partial(losses.binary_cross_entropy, from_logits=False)
    assert losses.target_kind(functools.partial(partial, reduction="sum")) == "binary"
    assert losses.target_kind(lambda p, t: losses.mse(p, t)) is None  # unknown: shapes only


def test_recipes_carry_their_task_and_its_kind_of_targets():
    cases = [
        (recipes.regression_mlp(2, (4,)), "regression", "real"),
        (recipes.regression_mlp(1, (4,), loss="huber"), "regression", "real"),
        (recipes.classifier_mlp(1, (4,), task="binary"), "binary", "binary"),
        (recipes.classifier_mlp(4, (4,), task="multilabel"), "multilabel", "binary"),
        (recipes.classifier_mlp(4, (4,)), "multiclass", "classes"),
        (recipes.classifier_mlp(4, (4,), labels="one_hot"), "multiclass", "distribution"),
    ]
    for recipe, task, kind in cases:
        assert (recipe.task, recipe.targets) == (task, kind)
        assert jaxnet.build(jaxnet.describe(recipe)).task == task


# ----------------------------------------------------------------------------- match_targets

# kind, output shape, targets, what the loss must receive (written out independently in NumPy)
GOOD = [
    ("real", (1,), np.arange(100), np.arange(100, dtype=np.float32)[:, None]),
    ("real", (2,), np.array([[1, -2], [3.5, 4]]), np.array([[1, -2], [3.5, 4]], np.float32)),
    ("binary", (1,), np.array([0, 1, 1]), np.array([[0], [1], [1]], np.float32)),
    ("binary", (1,), np.array([True, False]), np.array([[1], [0]], np.float32)),
    ("binary", (1,), np.array([0.0, 1.0]), np.array([[0], [1]], np.float32)),
    ("binary", (3,), np.array([[0, 1, 1], [1, 0, 0]]), np.array([[0, 1, 1], [1, 0, 0]], "f4")),
    ("classes", (3,), np.array([0, 2, 1]), np.array([0, 2, 1], np.int32)),
    ("classes", (3,), np.array([0.0, 2.0, 1.0]), np.array([0, 2, 1], np.int32)),
    ("classes", (3,), np.array([[0], [2]]), np.array([0, 2], np.int32)),
    ("classes", (5, 3), np.array([[0, 1, 2, 2, 1]]), np.array([[0, 1, 2, 2, 1]], np.int32)),
    ("distribution", (3,), np.eye(3)[[0, 2]], np.eye(3, dtype=np.float32)[[0, 2]]),
    ("distribution", (2,), np.array([[0.25, 0.75]]), np.array([[0.25, 0.75]], np.float32)),
    ("signs", (1,), np.array([-1, 1, 1]), np.array([[-1], [1], [1]], np.float32)),
    ("signs", (1,), np.array([0, 1]), np.array([[0], [1]], np.float32)),
    (None, (1,), np.array([0.5, 2.0]), np.array([[0.5], [2.0]], np.float32)),
    (None, (3,), np.array([0, 2]), np.array([0, 2], np.int32)),
]


@pytest.mark.parametrize(("kind", "output_shape", "y", "expected"), GOOD)
def test_targets_of_each_kind_are_accepted_and_shaped_for_the_loss(kind, output_shape, y, expected):
    got = match_targets(y, output_shape, "y", kind)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


BAD = [
    ("binary", (1,), np.array([0.0, 2.0]), r"values \[2\].*must be 0 or 1"),
    ("binary", (1,), np.array([-1.0, 1.0]), r"values \[-1\].*must be 0 or 1"),
    ("binary", (3,), np.array([[0, 1, 2]]), r"values \[2\].*must be 0 or 1"),
    ("binary", (1,), np.array([0.5, 1.0]), r"values \[0.5\]"),
    ("binary", (3,), np.array([0, 1]), r"per-example shape \(\) but the model outputs \(3,\)"),
    ("classes", (3,), np.array([0, 3]), r"labels in \[0, 3\].*must lie in \[0, 3\)"),
    ("classes", (3,), np.array([-1, 0]), r"labels in \[-1, 0\]"),
    ("classes", (3,), np.array([0.5, 1.0]), r"non-integer values \[0.5\]"),
    ("classes", (3,), np.eye(3), "use categorical_cross_entropy"),
    ("distribution", (3,), np.array([0, 1]), "use sparse_categorical_cross_entropy"),
    ("distribution", (2,), np.array([[1.0, 1.0]]), r"row 0 \[1\] sums to 2"),
    ("distribution", (2,), np.array([[1.5, -0.5]]), r"row 0 \[-0.5, 1.5\] sums to 1"),
    ("signs", (1,), np.array([-1, 0, 1]), "-1/\\+1"),
    ("real", (2,), np.ones((4, 3)), r"per-example shape \(3,\) but the model outputs \(2,\)"),
    (None, (1,), np.array([0, 2]), "must be 0 or 1"),  # an unknown loss: today's guess
]


@pytest.mark.parametrize(("kind", "output_shape", "y", "message"), BAD)
def test_targets_that_do_not_fit_the_kind_are_refused(kind, output_shape, y, message):
    with pytest.raises(DataError, match=message) as error:
        match_targets(y, output_shape, "y_val", kind)
    assert "y_val" in str(error.value)


def test_a_regression_mlp_trains_on_integer_targets_as_on_the_same_floats():
    recipe = recipes.regression_mlp(1, (4,))
    y = np.arange(12) * 8  # integer targets 0..88: regression, not labels
    ints, _ = _fit(recipe.model, recipe.loss, X, y)
    floats, _ = _fit(recipe.model, recipe.loss, X, y.astype(np.float32))
    _same_params(ints, floats)


def test_a_multiclass_recipe_trains_on_whole_float_labels_as_on_ints():
    recipe = recipes.classifier_mlp(3, (4,))
    ints, _ = _fit(recipe.model, recipe.loss, X, LABELS)
    floats, _ = _fit(recipe.model, recipe.loss, X, LABELS.astype(np.float64))
    _same_params(ints, floats)


# ----------------------------------------------------------------------------- every entry point


class _Rows:  # a random-access source: source[indices] -> (x, y)
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, indices):
        return self.x[indices], self.y[indices]


BINARY = recipes.classifier_mlp(1, (4,), task="binary")
BAD_BITS = np.where(BITS == 1, 2.0, 0.0).astype(np.float32)  # {0, 2}: a negative BCE otherwise


def _entry_points():
    model, loss = BINARY.model, BINARY.loss
    ts = jaxnet.create_train_state(model, optax.sgd(0.1), (3,), jax.random.key(0))
    many = jax.tree.map(lambda a: a[None], ts)  # a model axis of one, as fit_many returns

    def stream():
        return iter([(X[i : i + 4], BAD_BITS[i : i + 4]) for i in range(0, 12, 4)])

    return {
        "fit": lambda: _fit(model, loss, X, BAD_BITS),
        "fit(list)": lambda: _fit(model, loss, X.tolist(), BAD_BITS.tolist()),
        "fit(source)": lambda: _fit(model, loss, _Rows(X, BAD_BITS), None),
        "fit(stream)": lambda: _fit(model, loss, stream(), None, steps_per_epoch=3),
        "validation_data": lambda: _fit(model, loss, X, BITS, validation_data=(X, BAD_BITS)),
        "evaluate": lambda: jaxnet.evaluate(model, ts.params, ts.state, X, BAD_BITS, loss),
        "evaluate(source)": lambda: jaxnet.evaluate(
            model, ts.params, ts.state, _Rows(X, BAD_BITS), None, loss
        ),
        "fit_many": lambda: jaxnet.fit_many(
            model, loss, optax.sgd(0.1), X, BAD_BITS, epochs=1, batch_size=4, verbose=0
        ),
        "study": lambda: __import__("jaxnet.studies.run").studies.run.evaluate_many(
            BINARY, many, X, BAD_BITS
        ),
    }


def test_every_entry_point_checks_the_targets_by_the_loss_with_the_same_message():
    messages = {}
    for name, call in _entry_points().items():
        with pytest.raises(DataError, match=r"values \[2\] but binary") as error:
            call()
        messages[name] = error.value.detail.split("values")[1]
    assert len(set(messages.values())) == 1, messages


def test_evaluate_refuses_what_fit_refuses_instead_of_a_nan_or_zero_division():
    recipe = recipes.classifier_mlp(3, (4,))
    ts, _ = _fit(recipe.model, recipe.loss, X, LABELS)
    args = (recipe.model, ts.params, ts.state)
    cases = [
        ((X, -np.ones(12, int)), {}, DataError, r"labels in \[-1, -1\]"),
        ((X, np.full(12, 5)), {}, DataError, r"labels in \[5, 5\].*\[0, 3\)"),
        ((X[:0], LABELS[:0]), {}, DataError, "x is empty"),
        ((X, LABELS[:5]), {}, DataError, "different numbers of examples"),
        ((X, LABELS), {"batch_size": 0}, ConfigError, "batch_size must be in"),
        ((X, LABELS), {"batch_size": 2.0}, ArgumentTypeError, "batch_size must be an integer"),
        ((X, LABELS), {"loss_fn": "sparse"}, ArgumentTypeError, "loss_fn must be a function"),
        ((X, LABELS), {"metrics": ["accuracy"]}, ArgumentTypeError, r"metrics\[0\]"),
    ]
    for (x, y), options, error, message in cases:
        options = {"loss_fn": recipe.loss, "metrics": recipe.metrics} | options
        with pytest.raises(error, match=message):
            jaxnet.evaluate(*args, x, y, **options)
    for x, options, error, message in [
        (X[:0], {}, DataError, "x is empty"),
        (X, {"batch_size": 0}, ConfigError, "batch_size must be in"),
        (np.full((2, 3), np.nan), {}, DataError, "non-finite"),
        (np.array([["a", "b", "c"]]), {}, DataError, "x is of dtype <U1"),
    ]:
        with pytest.raises(error, match=message):
            jaxnet.predict(*args, x, **options)
    # The same numbers as lists give the same answers as arrays.
    logs = jaxnet.evaluate(*args, X, LABELS, recipe.loss, recipe.metrics)
    assert jaxnet.evaluate(*args, X.tolist(), LABELS.tolist(), recipe.loss, recipe.metrics) == logs
    np.testing.assert_array_equal(
        jaxnet.predict(*args, X.tolist(), batch_size=5), jaxnet.predict(*args, X, batch_size=5)
    )


def test_params_of_another_model_are_refused_by_fit_predict_and_evaluate():
    recipe = recipes.classifier_mlp(3, (4,))
    other, _ = _fit(recipes.classifier_mlp(3, (5,)).model, recipe.loss, X, LABELS)
    with pytest.raises(ShapeError, match=r"params/dense_0/b has shape \(5,\).*expects \(4,\)"):
        _fit(recipe.model, recipe.loss, X, LABELS, train_state=other)
    with pytest.raises(ShapeError, match="do not belong to this model"):
        jaxnet.predict(recipe.model, other.params, other.state, X)
    with pytest.raises(ShapeError, match="do not belong to this model"):
        jaxnet.evaluate(recipe.model, other.params, other.state, X, LABELS, recipe.loss)


# ----------------------------------------------------------------------------- types at the door


def test_lists_tuples_pandas_and_jax_arrays_are_converted_once_to_the_numpy_arrays():
    model, loss = serial_model(3), losses.sparse_categorical_cross_entropy
    inputs = [
        (X.tolist(), LABELS.tolist()),
        (tuple(map(tuple, X.tolist())), tuple(LABELS.tolist())),
        (list(X), list(LABELS)),  # a list of rows; a tuple of arrays would be several inputs
        (jnp.asarray(X), jnp.asarray(LABELS)),
        (X.astype(np.float64), LABELS.astype(np.uint8)),
    ]
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(X, columns=["a", "b", "c"])
    inputs += [(frame, pandas.Series(LABELS)), (frame, pandas.DataFrame({"label": LABELS}))]
    for x, y in inputs:
        got_x = to_numpy(x, "x")
        got_y = match_targets(to_numpy(y, "y"), (3,), "y", losses.target_kind(loss))
        assert (got_x.dtype, got_y.dtype) == (np.float32, np.int32)
        np.testing.assert_array_equal(got_x, X)
        np.testing.assert_array_equal(got_y, LABELS)
    # End to end: a DataFrame and a Series train exactly like the arrays they hold.
    reference, _ = _fit(model, loss, X, LABELS)
    got, _ = _fit(model, loss, frame, pandas.Series(LABELS))
    _same_params(got, reference)
    with pytest.raises(DataError, match=r"non-numeric columns \['city'\]"):
        _fit(model, loss, frame.assign(city="Paris"), LABELS)
    nullable = frame.astype({"a": "Float64"})
    nullable.loc[3, "a"] = None
    with pytest.raises(
        DataError, match=r"1 non-finite values \(NaN/inf\) in 1 rows, first rows \[3\]"
    ):
        _fit(model, loss, nullable, LABELS)


def serial_model(units):
    return jaxnet.serial(Dense(units))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (None, "x is None"),
        ("abc", "x is a str"),
        ([[1, 2, 3], [1, 2]], "ragged nested sequence"),
        (np.ones((12, 3), complex), "x is of dtype complex128"),
        (5.0, r"single value \(shape \(\)\)"),
        ({"a": np.ones((12, 3)), "b": ["x"] * 12}, r"x\['b'\] is of dtype <U1"),
    ],
)
def test_data_that_is_not_numbers_says_what_to_pass(x, message):
    with pytest.raises(DataError, match=message):
        to_numpy(x, "x")


# ----------------------------------------------------------------------------- fit's arguments

MODEL = serial_model(3)
LOSS = losses.sparse_categorical_cross_entropy
ARGUMENT_CASES = [
    ({"epochs": 1.5}, ArgumentTypeError, r"epochs must be an integer, got 1.5 \(float\)"),
    ({"epochs": "2"}, ArgumentTypeError, "epochs must be an integer"),
    ({"epochs": True}, ArgumentTypeError, "epochs must be an integer"),
    ({"epochs": -1}, ConfigError, "epochs must be in"),
    ({"batch_size": 4.0}, ArgumentTypeError, "batch_size must be an integer"),
    ({"batch_size": 0}, ConfigError, "batch_size must be in"),
    ({"seed": "a"}, ArgumentTypeError, "seed must be an int or a PRNG key"),
    ({"seed": 1.5}, ArgumentTypeError, "seed must be an int or a PRNG key"),
    ({"optimizer": "adam"}, ArgumentTypeError, r"optim.get\('adam', learning_rate\)"),
    ({"optimizer": optim.adam}, ArgumentTypeError, "call it with a learning rate"),
    ({"loss": "mse"}, ArgumentTypeError, r"loss_fn must be a function.*losses.get\('mse'\)"),
    ({"model": recipes.classifier_mlp(3, (4,))}, ArgumentTypeError, "pass recipe.model"),
    ({"metrics": ["accuracy"]}, ArgumentTypeError, r"metrics\[0\] must be a function"),
    ({"metrics": metrics.accuracy}, ArgumentTypeError, "metrics must be a list or dict"),
    ({"callbacks": jaxnet.EarlyStopping()}, ArgumentTypeError, "callbacks must be a list"),
    ({"callbacks": [jaxnet.EarlyStopping]}, ArgumentTypeError, r"pass an instance"),
    ({"callbacks": ["early"]}, ArgumentTypeError, r"callbacks\[0\] must be a callback"),
    ({"validation_split": "a"}, ArgumentTypeError, "validation_split must be a fraction"),
    ({"validation_split": 1.0}, ConfigError, r"validation_split must be in \[0, 1\)"),
    ({"validation_data": (X,)}, ArgumentTypeError, "a pair .* got a tuple of length 1"),
    ({"penalty": "l2"}, ArgumentTypeError, "penalty must be a function"),
    ({"verbose": "yes"}, ArgumentTypeError, "verbose must be an integer"),
    ({"shuffle": "no"}, ArgumentTypeError, "shuffle must be True or False"),
    ({"compute_dtype": "bf16"}, ArgumentTypeError, "compute_dtype must be a floating dtype"),
    ({"compute_dtype": jnp.int32}, ConfigError, "compute_dtype must be a floating dtype"),
    ({"mesh": "data"}, ArgumentTypeError, "mesh must be a jax.sharding.Mesh"),
    ({"train_state": "x"}, ArgumentTypeError, "train_state must be a TrainState"),
    ({"checkpoint_dir": 3}, ArgumentTypeError, "checkpoint_dir must be a folder path"),
    ({"steps_per_execution": 2.5}, ArgumentTypeError, "steps_per_execution must be an integer"),
]


@pytest.mark.parametrize(("options", "error", "message"), ARGUMENT_CASES)
def test_a_wrong_argument_to_fit_is_one_clear_error_naming_it(options, error, message):
    options = dict(options)
    model, loss = options.pop("model", MODEL), options.pop("loss", LOSS)
    optimizer = options.pop("optimizer", optax.sgd(0.1))
    options = {"epochs": 1, "batch_size": 4, "verbose": 0} | options
    with pytest.raises(error, match=message) as caught:
        jaxnet.fit(model, loss, optimizer, X, LABELS, **options)
    assert str(caught.value).startswith("fit: ")


def test_valid_seeds_counts_and_flags_of_every_integer_type_are_accepted():
    check_arguments("fit", seed=np.int64(3), epochs=np.int32(2), batch_size=jnp.int32(4))
    check_arguments("fit", seed=jax.random.key(1), verbose=True, shuffle=np.bool_(False))
    check_arguments("fit", seed=jax.random.PRNGKey(1), callbacks=(), metrics={"acc": len})
    assert check_int("x", "n", np.uint8(7), 1) == 7


def test_fit_many_checks_its_arguments_and_every_grid_cell():
    args = (MODEL, LOSS)
    cases = [
        ({"seeds": 3}, ArgumentTypeError, "seeds must be a sequence of int seeds"),
        ({"seeds": ["a"]}, ArgumentTypeError, "seeds must be a sequence of int seeds"),
        ({"batch_size": 0}, ConfigError, "batch_size must be in"),
        ({"grid": [0.1]}, ArgumentTypeError, "grid must be a dict"),
        ({"grid": {"learning_rate": [0.1, -1.0]}}, OptimizerError, "learning_rate must be in"),
        ({"grid": {"lr": [0.1]}}, ConfigError, "unexpected keyword argument 'lr'"),
    ]
    for options, error, message in cases:
        optimizer = optax.sgd(0.1)
        if "grid" in options:
            optimizer = lambda learning_rate: optim.sgd(learning_rate)  # noqa: E731
        options = {"epochs": 1, "batch_size": 4, "verbose": 0} | options
        with pytest.raises(error, match=message):
            jaxnet.fit_many(*args, optimizer, X, LABELS, **options)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: recipes.classifier_mlp(3, hidden=(4.5,)), ArgumentTypeError, r"hidden\[0\]"),
        (lambda: recipes.classifier_mlp(3, hidden=100), ArgumentTypeError, "hidden must be a seq"),
        (lambda: recipes.regression_mlp(1, hidden=(4, 0)), ConfigError, r"hidden\[1\] must be"),
        (lambda: recipes.classifier_mlp(2.5), ArgumentTypeError, "n_classes must be an integer"),
        (lambda: recipes.mlp(3.0), ArgumentTypeError, "n_outputs must be an integer"),
        (lambda: Dense(4.0), ArgumentTypeError, "units must be an integer, got 4.0"),
        (lambda: jaxnet.layers.Conv2D(8, 2.5), ConfigError, "kernel_size must be a positive"),
    ],
)
def test_non_integer_sizes_are_refused_naming_them(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_several_inputs_into_a_one_input_layer_is_a_shape_error():
    with pytest.raises(ShapeError, match="expected one array input, got several inputs"):
        _fit(MODEL, LOSS, {"a": X, "b": X}, LABELS)


# ----------------------------------------------------------------------------- the documentation


def _doc_messages(tmp_path, monkeypatch):
    """Each error quoted in docs/reliability.md, raised afresh."""
    x = X.copy()
    x[[0, 5], 1], x[5, 2] = np.nan, np.inf
    mc, binary = recipes.classifier_mlp(3, (4,)), BINARY
    ts = jaxnet.create_train_state(mc.model, optax.sgd(0.1), (3,), jax.random.key(0))
    wide = jaxnet.create_train_state(
        recipes.classifier_mlp(3, (5,)).model, optax.sgd(0.1), (3,), jax.random.key(0)
    )
    dense = jaxnet.serial(Dense(2))
    dense_params = dense.init(jax.random.key(0), (3,))[1:]
    calls = [
        lambda: _fit(mc.model, mc.loss, x, LABELS),
        lambda: to_numpy(np.array([["a"]]), "x"),
        lambda: _fit(mc.model, mc.loss, X[:0], LABELS[:0]),
        lambda: _fit(mc.model, mc.loss, X, LABELS[:10]),
        lambda: _fit(binary.model, binary.loss, X, np.where(BITS, 1.0, -1.0)),
        lambda: _fit(mc.model, mc.loss, X, np.arange(12) % 4),
        lambda: _fit(serial_model(3), losses.categorical_cross_entropy, X, LABELS),
        lambda: _fit(recipes.regression_mlp(2, (4,)).model, losses.mse, X, np.ones((12, 3))),
        lambda: _fit(mc.model, mc.loss, X, LABELS, epochs=2.5),
        lambda: _fit(mc.model, mc.loss, X, LABELS, batch_size=0),
        lambda: _fit(mc.model, mc.loss, X, LABELS, batch_size=32),
        lambda: jaxnet.fit(mc.model, mc.loss, "adam", X, LABELS),
        lambda: _fit(mc.model, mc.loss, X, LABELS, callbacks=jaxnet.EarlyStopping()),
        lambda: recipes.classifier_mlp(3, hidden=(100.5,)),
        lambda: optim.adam(-1.0),
        lambda: optim.get("momentum", 0.1, momentum=1.5),
        lambda: jaxnet.predict(mc.model, ts.params, ts.state, X[:, :2]),
        lambda: dense.apply(*dense_params, np.ones((2, 3), np.int32)),
        lambda: jaxnet.predict(mc.model, wide.params, wide.state, X),
    ]
    messages = []
    for call in calls:
        with pytest.raises(JaxnetError) as error:
            call()
        messages.append(str(error.value))
    from jaxnet import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run").write_text("")
    argvs = [["train", "--dataset", "iris", "--lr", "-1"], ["diagnose", "--out", "out/run"]]
    if Path("/dev/zero").exists():
        argvs.append(["summary", "--csv", "/dev/zero", "--target", "y"])
    for argv in argvs:
        try:
            cli.main(argv)
        except SystemExit:
            pass
    return messages, len(argvs)


def test_the_messages_quoted_in_docs_reliability_are_the_library_s(tmp_path, monkeypatch, capsys):
    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text()
    messages, commands = _doc_messages(tmp_path, monkeypatch)
    for message in messages:
        assert message in doc, message
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == commands
    for line in lines:
        assert line in doc, line


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: jaxnet.summary(MODEL, 3), ShapeError, r"input_shape must be a tuple of ints"),
        (lambda: jaxnet.serial("relu"), ArgumentTypeError, "got 'relu' \\(str\\)"),
        (
            lambda: datasets.train_test_split(X, LABELS, "0.2"),
            ConfigError,
            "test_fraction must be a number",
        ),
        (
            lambda: datasets.train_test_split(X, LABELS, 0.2, seed=-1),
            ConfigError,
            "seed must be in",
        ),
        (lambda: datasets.standardize([["a"]]), DataError, "must hold numbers"),
        (
            lambda: jaxnet.predict(MODEL, *MODEL.init(jax.random.key(0), (3,))[1:2], None, X),
            ShapeError,
            "state of another model",
        ),
    ],
)
def test_other_public_entry_points_name_the_bad_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
