"""``predict``, ``evaluate`` and ``fit``'s validation on arrays: one program per batch shape
(and one scoring the joined outputs), the same bits as one program over the whole data set
(``make_predict``/``make_evaluate``, which sources and ``fit_many`` use)."""

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet import activations, losses, metrics
from jaxnet.outputs import resolve
from jaxnet.train.evaluate import make_evaluate, make_predict

MODELS = {
    "mlp, batch norm, dropout": (
        lambda: jaxnet.serial(
            jaxnet.Dense(12),
            jaxnet.BatchNorm(),
            activations.Relu(),
            jaxnet.Dropout(0.5),
            jaxnet.Dense(3),
        ),  # fmt: skip
        (7,),
    ),
    "cnn": (
        lambda: jaxnet.serial(
            jaxnet.Conv2D(4, 3),
            activations.Relu(),
            jaxnet.MaxPool(2),
            jaxnet.Flatten(),
            jaxnet.Dense(3),
        ),  # fmt: skip
        (8, 8, 1),
    ),
    "lstm": (lambda: jaxnet.serial(jaxnet.RNN(jaxnet.LSTMCell(5)), jaxnet.Dense(3)), (6, 2)),
    "softmax inside": (lambda: jaxnet.serial(jaxnet.Dense(10), activations.Softmax()), (7,)),
}


def _params(model, shape, seed=0):
    params, state = jaxnet.init_model(model, jax.random.key(seed), shape)
    rng = np.random.default_rng(seed)  # away from the initialisation (batch norm's statistics too)
    return jax.tree.map(
        lambda a: a + 0.1 * rng.normal(size=a.shape).astype(a.dtype), (params, state)
    )


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predict_equals_one_program_over_the_whole_set_bit_for_bit(name):
    make, shape = MODELS[name]
    model = make()
    params, state = _params(model, shape)
    whole = make_predict(model, 64)
    for n in (1, 40, 64, 100, 300):
        x = np.random.default_rng(n).normal(size=(n, *shape)).astype(np.float32)
        got = jaxnet.predict(model, params, state, x, batch_size=64)
        assert isinstance(got, jax.Array) and got.shape[0] == n
        np.testing.assert_array_equal(got, whole(params, state, x), err_msg=f"{name}, n={n}")


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
def test_recipe_outputs_equal_one_program_over_the_whole_set_bit_for_bit(task):
    recipe = jaxnet.classifier_mlp(1 if task == "binary" else 4, hidden=(8,), task=task)
    params, state = jaxnet.init_model(recipe.model, jax.random.key(1), (5,))
    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32) * 3
    for output in ("probabilities", "classes", "logits"):
        model, finish = resolve(recipe, output)
        want = make_predict(model, 64, finish)(params, state, x)
        got = jaxnet.predict(recipe, params, state, x, batch_size=64, output=output)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=output)


def test_inputs_of_any_size_from_the_batch_size_up_share_one_program(compile_log):
    model = jaxnet.serial(jaxnet.Dense(9), activations.Tanh(), jaxnet.Dense(2))  # (shapes no
    params, state = jaxnet.init_model(model, jax.random.key(0), (11,))  # other test compiles)
    rng = np.random.default_rng(0)
    compile_log.clear()  # (the initialisation's programs: from here on, the predictions')
    for n in (37, 100, 250, 37):
        x = rng.normal(size=(n, 11)).astype(np.float32)
        np.testing.assert_array_equal(
            jaxnet.predict(model, params, state, x, batch_size=37),
            make_predict(model, 37)(params, state, x),
        )
    assert compile_log.count("jit(predict_batch)") == 1, compile_log
    # and nothing else per size (the reference, make_predict, compiles jit(predict) per size)
    assert [c for c in compile_log if c != "jit(predict)"] == ["jit(predict_batch)"], compile_log


@pytest.mark.parametrize("name", sorted(MODELS))
def test_evaluate_equals_one_program_over_the_whole_set_bit_for_bit(name):
    make, shape = MODELS[name]
    model = make()
    params, state = _params(model, shape)
    loss, scores = losses.sparse_categorical_cross_entropy, [metrics.accuracy]
    if name == "softmax inside":  # probabilities out: the cross-entropy of one-hot targets
        loss = losses.categorical_cross_entropy
    whole = make_evaluate(model, loss, scores, 64)
    for n in (1, 64, 300):
        x = np.random.default_rng(n).normal(size=(n, *shape)).astype(np.float32)
        y = np.random.default_rng(n + 1).integers(0, 3 if name != "softmax inside" else 10, n)
        if name == "softmax inside":
            y = np.eye(10, dtype=np.float32)[y]
        want = jax.device_get(whole(params, state, x, y))
        got = jaxnet.evaluate(model, params, state, x, y, loss, scores, batch_size=64)
        assert got == {k: float(v) for k, v in want.items()}, (name, n)
