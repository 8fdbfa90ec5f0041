"""jaxnet.random against jax.random: the same bits and numbers, exact under vmap."""

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet import init as initializers
from jaxnet.compilation import run_once
from jaxnet.core import init_model
from jaxnet.errors import ConfigError
from jaxnet.random import (
    HostKey,
    bernoulli,
    drawn_bits,
    fold_in,
    host_fold_in,
    host_jax_bits,
    host_permutation,
    host_split,
    init_on_host,
    key_words,
    normal,
    normal_from_bits,
    permutation,
    random_bits,
    split,
    threefry2x32,
    truncated_normal_from_bits,
    uniform,
    uniform_from_bits,
)

SHAPES = [(7,), (32, 256), (2, 3, 5)]


def test_threefry_equals_jax_threefry_2x32():
    rng = np.random.default_rng(0)
    for _ in range(3):
        key = jnp.asarray(rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32))
        counts = jnp.asarray(rng.integers(0, 2**32, 16, dtype=np.uint64).astype(np.uint32))
        expected = jax_random.threefry_2x32(key, counts)  # hashes (counts[:8], counts[8:])
        ours = threefry2x32(key[0], key[1], counts[:8], counts[8:])
        np.testing.assert_array_equal(np.concatenate(ours), expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_same_numbers_as_jax_random(shape):
    """Compiled both ways, as in a training step (eagerly, the affine map of ``uniform`` may
    round differently when XLA fuses one side into a multiply-add)."""
    key = jax.random.fold_in(jax.random.key(5), 3)

    def ours(key):
        return (
            random_bits(key, shape),
            uniform(key, shape, -2.0, 3.0),
            bernoulli(key, 0.7, shape),
            normal(key, shape),
        )

    def theirs(key):
        return (
            jax.random.bits(key, shape, jnp.uint32),
            jax.random.uniform(key, shape, minval=-2.0, maxval=3.0),
            jax.random.bernoulli(key, 0.7, shape),
            jax.random.normal(key, shape),
        )

    with jax.threefry_partitionable(True):  # jax's default (conftest turns it off for speed)
        expected = jax.jit(theirs)(key)
    for a, b in zip(jax.jit(ours)(key), expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [1, 2, 1437, 1625, 1626, 5000])  # 1626 up: two rounds of sorting
def test_permutation_is_jax_randoms(n):
    """The same order as ``jax.random.permutation`` (the shuffle of every epoch), compiled."""
    with jax.threefry_partitionable(True):  # jax's default (conftest turns it off for speed)
        for seed in (0, 7):
            key = jax.random.fold_in(jax.random.key(seed), 3)
            expected = jax.jit(jax.random.permutation, static_argnums=1)(key, n)
            ours = jax.jit(permutation, static_argnums=1)(key, n)
            assert ours.dtype == expected.dtype
            np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("partitionable", [True, False])
def test_host_twins_compute_jax_randoms_numbers(partitionable):
    """NumPy's fold_in, split and permutation on a Threefry key's data: jax.random's numbers
    under either ``jax_threefry_partitionable`` (it changes how a key splits)."""
    with jax.threefry_partitionable(partitionable):
        for seed in (0, 7):
            key = jax.random.fold_in(jax.random.key(seed), 3)
            words = key_words(key)
            assert words.dtype == np.uint32 and words.shape == (2,)
            for data in (0, 1, 12345, 2**31 - 1):
                expected = jax.random.key_data(jax.random.fold_in(key, data))
                np.testing.assert_array_equal(host_fold_in(words, data), expected)
            expected = jax.random.key_data(jax.random.split(key, 3))
            np.testing.assert_array_equal(host_split(words, 3), expected)
            for n in (1, 2, 1437, 1626, 100_000):  # 1626 up: two sorts; 100k: ties in the bits
                ours = host_permutation(words, n)
                assert ours.dtype == np.int32
                np.testing.assert_array_equal(ours, jax.jit(permutation, static_argnums=1)(key, n))


def test_key_words_of_each_kind_of_key():
    key = jax.random.key(4)
    np.testing.assert_array_equal(key_words(key), jax.random.key_data(key))
    np.testing.assert_array_equal(key_words(jax.random.PRNGKey(4)), jax.random.key_data(key))
    assert key_words(jax.random.key(4, impl="rbg")) is None  # another hash: not computed here
    assert key_words(jax.random.split(key, 2)) is None  # not one key


def test_exact_under_vmap_and_jit(key):
    keys = jax.random.split(key, 6)
    alone = np.stack([random_bits(k, (3, 5)) for k in keys])
    np.testing.assert_array_equal(jax.vmap(lambda k: random_bits(k, (3, 5)))(keys), alone)
    nested = jax.jit(jax.vmap(jax.vmap(lambda k: random_bits(k, (3, 5)))))(keys.reshape(2, 3))
    np.testing.assert_array_equal(nested.reshape(alone.shape), alone)


def test_other_key_types_and_dtypes(key):
    rbg = jax.random.key(0, impl="rbg")  # 128-bit key data: folded to 64 bits
    np.testing.assert_array_equal(random_bits(rbg, (4,)), random_bits(rbg, (4,)))
    assert normal(key, (3,), jnp.bfloat16).dtype == jnp.bfloat16
    with pytest.raises(ConfigError, match="2\\*\\*32"):
        random_bits(key, (2**16, 2**16))


def test_normal_moments_and_tails():
    z = np.asarray(normal(jax.random.key(2), (400, 500)), np.float64)
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01  # 200k samples: sd 0.0022
    assert abs(np.mean(np.abs(z) < 1.0) - 0.682689) < 0.005
    assert abs(np.mean(np.abs(z) < 2.0) - 0.954500) < 0.003


# -- an initialisation whose draws' bits come from the host ---------------------------------------
@pytest.mark.parametrize("partitionable", [True, False])
def test_numbers_from_host_bits_are_jax_randoms(partitionable):
    """NumPy's bits and the from-bits maps give jax.random's float32 numbers, compiled either
    way (XLA fuses the affine map into a multiply-add: both sides are compiled)."""
    with jax.threefry_partitionable(partitionable):
        for seed, shape in [(0, (7,)), (3, (64, 100)), (9, (3, 3, 2, 5))]:
            key = jax.random.fold_in(jax.random.key(seed), 1)
            bits = host_jax_bits(key_words(key), shape)
            np.testing.assert_array_equal(bits, jax.random.bits(key, shape, jnp.uint32))
            pairs = [
                (lambda b: uniform_from_bits(b, -0.3, 0.3),
                 lambda k, s=shape: jax.random.uniform(k, s, jnp.float32, -0.3, 0.3)),
                (lambda b: 0.7 * truncated_normal_from_bits(b, -2.0, 2.0),
                 lambda k, s=shape: 0.7 * jax.random.truncated_normal(k, -2.0, 2.0, s)),
                (normal_from_bits, lambda k, s=shape: jax.random.normal(k, s)),
            ]  # fmt: skip
            for ours, theirs in pairs:
                np.testing.assert_array_equal(jax.jit(ours)(bits), jax.jit(theirs)(key))
                np.testing.assert_array_equal(run_once(ours, bits), run_once(theirs, key))


def _models():
    dense, relu = jaxnet.Dense, jaxnet.activations.Relu
    return {
        "he MLP": (jaxnet.serial(dense(16, kernel_init="he_normal"), relu(), dense(3)), (6,)),
        "each initializer": (jaxnet.serial(
            dense(7, kernel_init="lecun_uniform"), dense(5, kernel_init=initializers.normal(0.3)),
            dense(4, kernel_init="glorot_normal"), dense(4, kernel_init="orthogonal"),
            dense(5, kernel_init="orthogonal(2.0)"), dense(3, kernel_init="he_uniform")), (6,)),
        "CNN and BatchNorm": (jaxnet.serial(
            jaxnet.layers.Conv2D(4, (3, 3)), jaxnet.layers.BatchNorm(), jaxnet.layers.Flatten(),
            dense(3)), (6, 6, 2)),
        "GRU": (jaxnet.RNN(jaxnet.GRUCell(8), return_sequences=True), (5, 3)),
        "LSTM": (jaxnet.RNN(jaxnet.LSTMCell(4)), (5, 3)),
    }  # fmt: skip


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("name", list(_models()))
def test_init_on_host_equals_the_initialisation_with_jax_keys(name, partitionable):
    model, shape = _models()[name]
    with jax.threefry_partitionable(partitionable):
        for key in (jax.random.key(5), jax.random.PRNGKey(11)):
            init = lambda k: init_model(model, k, shape)  # noqa: E731
            program, bits = init_on_host(init, key_words(key))
            for a, b in zip(jax.tree.leaves(run_once(program, bits)),
                            jax.tree.leaves(run_once(init, key)), strict=True):  # fmt: skip
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)


def test_init_on_host_leaves_a_key_used_otherwise_to_jax():
    """A custom initializer or layer that hands its key to jax.random, or a bfloat16 draw: no
    host program (the JAX key initialises the model, with the same numbers as ever)."""
    words = key_words(jax.random.key(0))
    custom_init = jaxnet.Dense(3, kernel_init=lambda k, s, d: jax.random.normal(k, s, d))
    assert init_on_host(lambda k: init_model(custom_init, k, (4,)), words) is None

    def noise_init(key, input_shape):
        return input_shape, {"w": jax.random.uniform(jax.random.split(key)[0], (2,))}, {}

    layer = jaxnet.Layer(noise_init, lambda p, s, x, **_: (x, s), "noise")
    assert init_on_host(lambda k: init_model(layer, k, (4,)), words) is None
    # jax.random draws bfloat16 from other bits: JAX keys (in fit_many, each model's own)
    half = jaxnet.serial(jaxnet.Dense(6, dtype=jnp.bfloat16), jaxnet.Dense(3))
    assert init_on_host(lambda k: init_model(half, k, (4,)), words) is None


def test_host_keys_split_and_fold_in_as_jax_keys_do_and_draw_only_inside_init_on_host():
    key = jax.random.key(3)
    host = HostKey(key_words(key))
    for ours, theirs in zip(split(host, 3), jax.random.split(key, 3), strict=True):
        np.testing.assert_array_equal(ours.words, jax.random.key_data(theirs))
    np.testing.assert_array_equal(fold_in(host, 9).words,
                                  jax.random.key_data(jax.random.fold_in(key, 9)))  # fmt: skip
    with pytest.raises(ConfigError, match="init_on_host"):
        drawn_bits(host, (2,))


def test_init_on_host_leaves_many_numbers_to_jax(monkeypatch):
    """Beyond ``HOST_DRAWS`` numbers (all keys' together), compiled Threefry is cheaper."""
    import jaxnet.random

    init = lambda k: init_model(jaxnet.Dense(20), k, (6,))  # noqa: E731 - 120 numbers a key
    words = key_words(jax.random.key(0))
    monkeypatch.setattr(jaxnet.random, "HOST_DRAWS", 240)
    assert init_on_host(init, words) is not None
    assert init_on_host(init, np.stack([words, words])) is not None  # 240
    assert init_on_host(init, np.stack([words, words, words])) is None  # 360
