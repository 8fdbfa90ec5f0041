"""summary(): row counts, shapes and outputs equal those of the real params and forward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet import layers, models
from jaxnet.core import apply_with_outputs, count_params, path_string, serial, sublayers
from jaxnet.regularizers import ActivityRegularization
from jaxnet.topology import branch, concat, parallel, residual, select, wide_and_deep


def _inputs(shape, seed=0):
    if isinstance(shape, dict):
        return {k: _inputs(v, seed + i) for i, (k, v) in enumerate(sorted(shape.items()))}
    if shape and isinstance(shape[0], tuple):
        return tuple(_inputs(s, seed + i) for i, s in enumerate(shape))
    return jnp.asarray(np.random.default_rng(seed).normal(size=(2, *shape)), jnp.float32)


def _walk(tree, path):
    for part in path.split("/"):
        tree = tree[part]
    return tree


def _per_example(output):
    if hasattr(output, "shape"):
        return tuple(output.shape[1:])
    return tuple(_per_example(o) for o in output)


MODELS = [
    ("mlp_batch_norm", lambda: jaxnet.classifier_mlp(3, (4,), batch_norm=True).model, (5,)),
    (
        "nested_residual",
        lambda: serial(
            layers.Dense(4),
            residual(serial(layers.Dense(6), ActivityRegularization(0.1), name="block")),
            jaxnet.activations.Relu(),
            name="net",
        ),
        (3,),
    ),
    (
        "parallel_concat",
        lambda: serial(parallel(layers.Dense(2), layers.Dense(3)), concat()),
        ((2,), (4,)),
    ),
    ("branch", lambda: serial(branch(layers.Dense(2), jnp.tanh), concat()), (4,)),
    ("select", lambda: serial(select("b"), layers.Dense(2)), {"a": (2,), "b": (3,)}),
    (
        "wide_and_deep",
        lambda: wide_and_deep("wide", "deep", deep_hidden=(3,)),
        {"deep": (3,), "wide": (2,)},
    ),
    (
        "rnn_lengths",
        lambda: serial(
            layers.RNN(layers.GRUCell(3), return_sequences=True), layers.RNN(layers.LSTMCell(2))
        ),
        {"x": (5, 2), "lengths": ()},
    ),
    (
        "bidirectional",
        lambda: layers.Bidirectional(layers.GRUCell(2), layers.SimpleRNNCell(3)),
        (5, 2),
    ),
    (
        "cnn",
        lambda: serial(
            layers.Conv2D(3, 3, padding="SAME", kernel_init="he_normal"),
            jax.nn.relu,
            layers.MaxPool(2),
            layers.BatchNorm(),
            layers.Flatten(),
            layers.Dense(2),
        ),
        (4, 4, 1),
    ),
    ("autoencoder", lambda: models.dense_autoencoder(6, 2, hidden=(4,)).model, (6,)),
    ("single_layer", lambda: layers.Dense(3), (4,)),
]


@pytest.mark.parametrize("make, input_shape", [m[1:] for m in MODELS], ids=[m[0] for m in MODELS])
def test_rows_match_the_real_params_and_outputs(make, input_shape):
    model = make()
    table = jaxnet.summary(model, input_shape)
    out_shape, params, state = model.init(jax.random.key(0), input_shape)
    y, _, outputs = apply_with_outputs(model, params, state, _inputs(input_shape))
    assert table.total_params == count_params(params)
    assert table.total_state == count_params(state)
    leaves = jax.tree.leaves((params, state))
    assert table.param_bytes + table.state_bytes == sum(a.size * a.dtype.itemsize for a in leaves)
    root, *rows = table.rows
    assert root.path == model.name and root.output_shape == _per_example(y) == tuple(out_shape)
    automatic = {"residual_1/projection_1"} if "residual_1" in params else set()
    assert {row.path.split("/", 1)[1] for row in rows} == set(sublayers(model)) | automatic
    for row in rows:
        path = row.path.split("/", 1)[1]
        real = _walk(params, path) if path.split("/")[0] in params else {}
        assert row.params == count_params(real), row.path
        if row.param_shapes:
            shapes = jax.tree_util.tree_flatten_with_path(real)[0]
            assert row.param_shapes == {path_string(p): a.shape for p, a in shapes}, row.path
        assert row.output_shape == _per_example(outputs[path]), row.path
    text = str(table)
    assert all(row.path in text for row in table.rows)
    assert f"total: {count_params(params):,} params" in text


def test_layer_facts_and_the_table_layout():
    model = jaxnet.classifier_mlp(3, (4,), activation="selu", batch_norm=True).model
    table = jaxnet.summary(model, (5,))
    by_path = {row.path: row for row in table.rows}
    dense = by_path["multiclass_mlp/dense_0"]
    assert (dense.kind, dense.initializer, dense.param_shapes) == (
        "Dense",
        "lecun_normal",
        {"w": (5, 4)},
    )
    assert by_path["multiclass_mlp/selu_2"].activation == "selu"
    assert by_path["multiclass_mlp/batch_norm_1"].state_shapes == {"mean": (4,), "var": (4,)}
    lines = str(table).splitlines()
    assert lines[0] == "multiclass_mlp: input (5,)" and lines[1].split()[:4] == [
        "layer",
        "kind",
        "output",
        "params",
    ]
    assert repr(table) == str(table)


def test_no_arrays_are_allocated():
    """Five billion parameters (20 GB) summarise instantly: only shapes are traced."""
    model = serial(layers.Dense(50_000), layers.Dense(50_000))
    table = jaxnet.summary(model, (50_000,))
    assert table.total_params == 2 * (50_000 * 50_000 + 50_000)
    assert table.param_bytes == 4 * table.total_params
