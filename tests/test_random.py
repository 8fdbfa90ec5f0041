"""jaxnet.random against jax.random: the same bits and numbers, exact under vmap."""

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.errors import ConfigError
from jaxnet.random import (
    bernoulli,
    host_fold_in,
    host_permutation,
    host_split,
    key_words,
    normal,
    permutation,
    random_bits,
    threefry2x32,
    uniform,
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
