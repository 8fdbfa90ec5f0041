"""Cold start: ``fit`` compiles its epoch and validation programs on a worker thread while the
initialisation compiles and runs (jaxnet.compilation.Compiling); the results stay bit-identical."""

import gc
import logging
import os
import subprocess
import sys
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet import losses, optim
from jaxnet.compilation import (
    Compiling,
    clear_programs,
    collector_spares_older_objects,
    compile_cached,
    program_key,
    run_once,
    same_types,
)
from jaxnet.random import permutation
from jaxnet.train.many import data_orders, initial_states
from jaxnet.train.step import create_train_state, make_epoch, take_rows

LOSS = losses.sparse_categorical_cross_entropy


def problem(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)


@pytest.fixture(scope="module")
def fitted():
    """One fit with validation data, with every program it compiled logged."""
    clear_programs()  # (no earlier test's programs found compiled)
    x, y = problem()
    x_val, y_val = problem(40, seed=1)
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dense(3))
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    jax.config.update("jax_log_compiles", True)
    try:
        ts, history = jaxnet.fit(model, LOSS, optim.adam(1e-2), x, y, epochs=3, batch_size=16,
                                 seed=7, validation_data=(x_val, y_val), verbose=0)  # fmt: skip
    finally:
        jax.config.update("jax_log_compiles", False)
        logger.removeHandler(handler)
    compiled = [m.split()[4] for m in records if m.startswith("Finished XLA compilation")]
    return model, (x, y, x_val, y_val), ts, history, compiled


def test_fit_equals_its_unchanged_building_blocks_bit_for_bit(fitted):
    model, (x, y, x_val, y_val), ts, history, _ = fitted
    optimizer = optim.adam(1e-2)
    init = lambda key: create_train_state(model, optimizer, (5,), key)  # noqa: E731
    reference = run_once(init, jax.random.key(7))
    epoch = jax.jit(make_epoch(model, LOSS, optimizer, 16))
    for i in range(3):
        reference, logs, _ = epoch(reference, jnp.asarray(x), jnp.asarray(y))
        assert history["loss"][i] == float(logs["loss"])
    raw = lambda t: t._replace(key=jax.random.key_data(t.key))  # noqa: E731
    jax.tree.map(np.testing.assert_array_equal, raw(ts), raw(reference))
    scores = jaxnet.evaluate(model, ts.params, ts.state, x_val, y_val, LOSS)
    assert history["val_loss"][-1] == scores["loss"]


def test_fit_compiles_each_program_once(fitted):
    *_, compiled = fitted
    assert compiled.count("jit(checked)") == 1  # the epoch (compiled ahead, not again)
    assert not [name for name in compiled if "order" in name]  # its shuffle: NumPy's, apart
    assert compiled.count("jit(predict_batch)") == 1  # the validation's batches (compiled ahead,
    assert compiled.count("jit(scored)") == 1  # and its scoring: not again)
    assert "jit(_leaves_went_non_finite)" not in compiled  # a finite run: the epoch program looks


def test_compiling_runs_the_program_and_reraises_its_error():
    shapes = jax.ShapeDtypeStruct((3,), jnp.float32)
    double = Compiling(jax.jit(lambda a: 2 * a).lower(shapes))
    np.testing.assert_array_equal(double(jnp.arange(3.0)), [0.0, 2.0, 4.0])
    assert double.seconds > 0

    class Broken:
        def compile(self, compiler_options=None):  # (jax.stages.Lowered.compile)
            raise RuntimeError("no compiler")

    with pytest.raises(RuntimeError, match="no compiler"):
        Compiling(Broken()).result()


def test_epochs_ordered_ahead_equal_epochs_ordered_when_they_start():
    # fit computes each epoch's order beside the epoch before; fits of one epoch each, every
    # one continuing from the last, compute it when their epoch starts
    x, y = problem()
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dense(3))
    common = dict(batch_size=16, seed=3, verbose=0)
    ahead, history = jaxnet.fit(model, LOSS, optim.sgd(0.1), x, y, epochs=4, **common)
    ts = None
    for epoch in range(4):
        ts, one = jaxnet.fit(model, LOSS, optim.sgd(0.1), x, y, epochs=1, train_state=ts,
                             **common)  # fmt: skip
        assert one["loss"] == [history["loss"][epoch]]
    jax.tree.map(np.testing.assert_array_equal, ahead.params, ts.params)


def test_a_run_key_of_another_kind_orders_epochs_on_the_device_as_the_epoch_would():
    # NumPy orders the epochs of Threefry keys; an RBG key's orders come from a small program:
    # the same orders as the epoch program computing its own (make_epoch without an order)
    x, y = problem()
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dense(3))
    key = jax.random.key(5, impl="rbg")
    ts, history = jaxnet.fit(model, LOSS, optim.sgd(0.1), x, y, epochs=2, batch_size=16,
                             seed=key, verbose=0)  # fmt: skip
    reference = run_once(lambda k: create_train_state(model, optim.sgd(0.1), (5,), k), key)
    epoch = jax.jit(make_epoch(model, LOSS, optim.sgd(0.1), 16))
    for i in range(2):
        reference, logs, _ = epoch(reference, jnp.asarray(x), jnp.asarray(y))
        assert history["loss"][i] == float(logs["loss"])
    jax.tree.map(np.testing.assert_array_equal, ts.params, reference.params)


def test_a_second_fit_compiles_nothing_and_equals_a_first_fit_bit_for_bit(compile_log):
    x, y = problem()
    x_val, y_val = problem(40, seed=1)

    def run(learning_rate=1e-2):  # a new model and optimizer each time, as a script builds them
        model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dense(3))
        ts, history = jaxnet.fit(model, LOSS, optim.adam(learning_rate), x, y, epochs=3,
                                 batch_size=16, seed=7, validation_data=(x_val, y_val),
                                 verbose=0)  # fmt: skip
        return ts._replace(key=jax.random.key_data(ts.key)), history

    first, history = run()
    assert {"jit(checked)", "jit(model_state_from_bits)", "jit(init)"} <= set(compile_log)
    compile_log.clear()
    second, again = run()
    assert compile_log == [], compile_log
    jax.tree.map(np.testing.assert_array_equal, second, first)
    for name in ("loss", "val_loss"):
        assert again[name] == history[name]
    # another learning rate: the epoch reads it from the optimizer's state, whose small program
    # holds the number: only that one compiles (the model's initialisation is apart)
    other, _ = run(learning_rate=3e-2)
    assert compile_log == ["jit(init)"], compile_log
    assert not np.array_equal(other.params["dense_0"]["w"], first.params["dense_0"]["w"])


def test_a_second_fit_many_compiles_nothing_and_equals_the_first(compile_log):
    x, y = problem()

    def run(data_seed=0):
        model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dense(3))
        result = jaxnet.fit_many(model, LOSS, lambda learning_rate: optim.adam(learning_rate),
                                 x, y, seeds=[1, 2], grid={"learning_rate": [1e-2, 3e-2]},
                                 epochs=2, batch_size=16, data_seed=data_seed,
                                 verbose=0)  # fmt: skip
        return result.train_state.params, result.history

    params, history = run()
    assert {"jit(train_epoch)", "jit(state_from_bits)"} <= set(compile_log), compile_log
    op_by_op = {"jit(dynamic_slice)", "jit(squeeze)", "jit(_threefry_seed)", "jit(stage)",
                "jit(convert_element_type)"}  # fmt: skip
    assert not op_by_op & set(compile_log), compile_log  # (keys, one model's shapes, hypers)
    compile_log.clear()
    again, history_again = run()
    assert compile_log == [], compile_log
    jax.tree.map(np.testing.assert_array_equal, again, params)
    np.testing.assert_array_equal(history_again["loss"], history["loss"])
    other, _ = run(data_seed=5)  # the data's order is an argument (NumPy's): nothing compiles
    assert compile_log == [], compile_log
    assert not np.array_equal(other["dense_0"]["w"], params["dense_0"]["w"])


@pytest.mark.parametrize("kernel_init", ["he_normal", "glorot_uniform", "custom", "bfloat16"])
def test_fit_many_initialises_as_its_vmapped_program_of_jax_keys_would(kernel_init):
    """The models' states from NumPy's bits (a custom initializer, a bfloat16 layer: from JAX
    keys, as before) equal one ``vmap``ped program of ``create_train_state`` with
    ``jax.random.key(seed)``: each model its own numbers."""
    dtype = jnp.bfloat16 if kernel_init == "bfloat16" else jnp.float32
    if kernel_init == "custom":
        kernel_init = lambda k, s, d: jax.random.normal(k, s, d)  # noqa: E731
    elif kernel_init == "bfloat16":
        kernel_init = "he_normal"
    model = jaxnet.serial(jaxnet.Dense(8, kernel_init=kernel_init, dtype=dtype), jaxnet.Dense(3))
    seeds = np.array([1, 2, 2**31 + 5], np.uint32)
    hparams = {"learning_rate": np.array([1e-2, 3e-2, 1e-3], np.float32)}
    make = lambda learning_rate: optim.adam(learning_rate)  # noqa: E731

    def init_one(seed, hp):
        return create_train_state(model, make(**hp), (5,), jax.random.key(seed))

    raw = lambda t: t._replace(key=jax.random.key_data(t.key))  # noqa: E731
    ours = raw(initial_states(model, make, (5,), seeds, hparams))
    jax.tree.map(
        np.testing.assert_array_equal, ours, raw(run_once(jax.vmap(init_one), seeds, hparams))
    )


@pytest.mark.parametrize("data_seed", [0, 5, 2**31 + 3])  # the last: a key computed, not wrapped
def test_fit_many_orders_its_epochs_as_jax_random_would(data_seed):
    for partitionable in (True, False):  # (jax's default; the suite's, see conftest)
        with jax.threefry_partitionable(partitionable):
            order = data_orders(data_seed, 1437)
            for epoch in (0, 1, 40):
                key = jax.random.fold_in(jax.random.key(data_seed), epoch)
                ours = jax.jit(permutation, static_argnums=1)(key, 1437)  # (in the program)
                np.testing.assert_array_equal(order(epoch), ours)
                if partitionable:  # where jaxnet.random's bits are jax.random's
                    np.testing.assert_array_equal(order(epoch), jax.random.permutation(key, 1437))


def test_programs_that_one_text_could_mean_are_told_apart():
    clear_programs()
    a, b = jnp.arange(3.0), jnp.arange(3.0) + 10
    # unused arguments are dropped from the text: both lower to "return %arg0"
    first = jax.jit(lambda p, q: p).lower(a, b)
    second = jax.jit(lambda p, q: q).lower(a, b)
    assert first.as_text() == second.as_text()
    np.testing.assert_array_equal(compile_cached(first)(a, b), a)
    np.testing.assert_array_equal(compile_cached(second)(a, b), b)
    # an unused argument of another shape (calls check every argument's type): another program
    head = jax.jit(lambda pair: pair[0] + 1)
    assert program_key(head.lower((a, a))) != program_key(head.lower((a, a[:2])))
    # a weakly typed argument, other compile options: other programs
    double = jax.jit(lambda p: 2 * p)
    assert program_key(double.lower(1.0)) != program_key(double.lower(jnp.float32(1.0)))
    lowered = double.lower(a)
    at_o0 = jax.jit(lambda p: 2 * p, compiler_options={"xla_backend_optimization_level": 0})
    assert program_key(lowered) != program_key(at_o0.lower(a))
    before = program_key(lowered)
    jax.config.update("jax_exec_time_optimization_effort", 0.5)  # (read when compiling)
    try:
        assert program_key(double.lower(a)) != before
    finally:
        jax.config.update("jax_exec_time_optimization_effort", 0.0)
    assert program_key(lowered) == program_key(double.lower(a + 1))  # (values are not types)
    # constants in the program, however large, are part of what it is
    big = np.arange(10_000, dtype=np.float32)
    plus = [jax.jit(lambda p, c=c: p + c).lower(jnp.zeros(10_000)) for c in (big, big.copy())]
    plus.append(jax.jit(lambda p: p + 2 * big).lower(jnp.zeros(10_000)))
    assert program_key(plus[0]) == program_key(plus[1]) != program_key(plus[2])


def test_programs_with_host_callbacks_are_not_kept():
    seen = []
    noted = jax.jit(lambda p: (jax.debug.callback(seen.append, p), 2 * p)[1])
    assert program_key(noted.lower(jnp.arange(3.0))) is None
    compile_cached(noted.lower(jnp.arange(3.0)))(jnp.arange(3.0))
    jax.effects_barrier()
    assert len(seen) == 1


def test_the_newest_programs_are_kept(monkeypatch, compile_log):
    import jaxnet.compilation as compilation

    monkeypatch.setattr(compilation, "PROGRAMS_KEPT", 2)

    def lowered(k):  # a new function each time: nothing cached by jax.jit itself
        return jax.jit(lambda p: p + k).lower(1.0)

    for k in range(3):
        compile_cached(lowered(k))
    assert len(compilation._PROGRAMS) == 2
    compile_log.clear()
    compile_cached(lowered(2))  # kept
    assert compile_log == []
    compile_cached(lowered(0))  # the oldest: forgotten, compiled again
    assert len(compile_log) == 1


def test_same_types_compares_structure_shapes_dtypes_and_weak_types():
    tree = {"w": jnp.ones((2, 3)), "n": jnp.int32(0)}
    assert same_types(tree, jax.eval_shape(lambda t: t, tree))
    assert not same_types(tree, {"w": jnp.ones((2, 4)), "n": jnp.int32(0)})
    assert not same_types(tree, {"w": jnp.ones((2, 3), jnp.bfloat16), "n": jnp.int32(0)})
    assert not same_types(tree, {"w": jnp.ones((2, 3)), "n": jnp.asarray(0)})  # weakly typed
    assert not same_types(tree, [jnp.ones((2, 3)), jnp.int32(0)])


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31 - 1, 2**31, -3])
def test_fit_keys_from_seeds_are_jax_random_keys(seed):
    from jaxnet.train.fit import as_key

    key, expected = as_key(seed), jax.random.key(seed)
    assert key.dtype == expected.dtype
    np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(expected))
    np.testing.assert_array_equal(jax.random.normal(key, (4,)), jax.random.normal(expected, (4,)))


RUN_ONCE_SCRIPT = """
import jax, numpy as np, jaxnet
from jaxnet import compilation, optim
from jaxnet.train.step import create_train_state
options = compilation.run_once_options()
assert options.pop("xla_cpu_use_fusion_emitters") is False, options
models = [  # Glorot uniform, He and LeCun truncated normals, orthogonal (QR) and batch norm
    (jaxnet.serial(jaxnet.Dense(100), jax.nn.relu, jaxnet.Dense(10)), (64,)),
    (jaxnet.serial(jaxnet.Dense(30, kernel_init="he_normal"), jaxnet.BatchNorm(),
                   jaxnet.Dense(5, kernel_init="lecun_normal")), (7,)),
    (jaxnet.serial(jaxnet.RNN(jaxnet.GRUCell(16)), jaxnet.Dense(4)), (5, 3)),
]
for model, shape in models:
    init = lambda key: create_train_state(model, optim.adam(1e-3), shape, key)
    key = jax.random.key(3)
    ours = compilation.run_once(init, key)
    plain = jax.jit(init).lower(key).compile(compiler_options=options)(key)
    raw = lambda t: jax.tree.leaves(t._replace(key=jax.random.key_data(t.key)))
    for a, b in zip(raw(ours), raw(plain), strict=True):
        np.testing.assert_array_equal(a, b)
print("ok")
"""


def test_run_once_compiles_with_the_elemental_emitters_and_the_same_bits(tmp_path):
    """With XLA's default flags (the suite sets its own): ``run_once``'s option for XLA:CPU's
    elemental emitters changes no bit of an initialisation compiled at -O0 without it."""
    script = tmp_path / "run_once.py"
    script.write_text(RUN_ONCE_SCRIPT)
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["ok"], out.stderr[-3000:]


class Node:
    """An object in a reference cycle: only the cycle collector frees it."""

    def __init__(self):
        self.me = self


def test_the_collector_spares_older_objects_inside_and_gets_them_back_after():
    if gc.get_freeze_count():
        pytest.skip("this process froze objects itself")
    old = Node()
    older = weakref.ref(old)
    with collector_spares_older_objects():
        assert gc.get_freeze_count() > 0
        young = weakref.ref(Node())  # made inside: collected as usual
        del old
        gc.collect()
        assert older() is not None and young() is None
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert older() is None  # the collector's again: nothing leaks


def test_a_program_that_froze_objects_keeps_them_frozen():
    if gc.get_freeze_count():
        pytest.skip("this process froze objects itself")
    old = Node()
    older = weakref.ref(old)
    gc.freeze()
    try:
        del old
        x, y = problem(32)
        jaxnet.fit(jaxnet.Dense(3), LOSS, optim.sgd(0.1), x, y, epochs=1, verbose=0)
        gc.collect()
        assert gc.get_freeze_count() > 0 and older() is not None  # still frozen
    finally:
        gc.unfreeze()
    gc.collect()
    assert older() is None
    jaxnet.fit(jaxnet.Dense(3), LOSS, optim.sgd(0.1), x, y, epochs=1, verbose=0)
    assert gc.get_freeze_count() == 0


def test_take_rows_gathers_the_rows_jnp_take_gathers():
    # the inputs' gather of every step: XLA's plain gather (no out-of-range fill to compile)
    a = np.arange(40.0, dtype=np.float32).reshape(10, 4)
    index = np.array([9, 0, 3, 3, 7], np.int32)
    np.testing.assert_array_equal(take_rows(jnp.asarray(a), index), a[index])
    np.testing.assert_array_equal(jax.jit(take_rows)(a, index), jnp.take(a, index, axis=0))


def test_fit_many_orders_for_a_key_of_another_kind_come_from_a_program():
    jax.config.update("jax_default_prng_impl", "rbg")
    try:
        order = data_orders(5, 300)
        key = jax.random.fold_in(jax.random.key(5), 4)  # an RBG key: no NumPy twin
        np.testing.assert_array_equal(order(4), jax.jit(permutation, static_argnums=1)(key, 300))
        assert order(4).dtype == np.int32
    finally:
        jax.config.update("jax_default_prng_impl", "threefry2x32")
