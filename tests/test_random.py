"""jaxnet.random: Threefry-2x32 against JAX's own, exactness under vmap, and the distributions."""

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.random import bernoulli, normal, random_bits, threefry2x32


def test_threefry_equals_jax_threefry_2x32():
    rng = np.random.default_rng(0)
    for _ in range(3):
        key = jnp.asarray(rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32))
        counts = jnp.asarray(rng.integers(0, 2**32, 16, dtype=np.uint64).astype(np.uint32))
        expected = jax_random.threefry_2x32(key, counts)  # hashes (counts[:8], counts[8:])
        ours = threefry2x32(key[0], key[1], counts[:8], counts[8:])
        np.testing.assert_array_equal(np.concatenate(ours), expected)


def test_bits_are_reproducible_and_exact_under_vmap_and_jit(key):
    keys = jax.random.split(key, 6)
    alone = np.stack([random_bits(k, (3, 5)) for k in keys])
    np.testing.assert_array_equal(jax.vmap(lambda k: random_bits(k, (3, 5)))(keys), alone)
    nested = jax.jit(jax.vmap(jax.vmap(lambda k: random_bits(k, (3, 5)))))(keys.reshape(2, 3))
    np.testing.assert_array_equal(nested.reshape(alone.shape), alone)
    assert len(np.unique(alone)) == alone.size  # no repeats across keys or elements
    rbg = jax.random.key(0, impl="rbg")  # a 128-bit key works too
    np.testing.assert_array_equal(random_bits(rbg, (4,)), random_bits(rbg, (4,)))


def test_bits_are_uniform():
    bits = np.asarray(random_bits(jax.random.key(3), (256, 256)), np.uint64)
    ones = np.stack([(bits >> b) & 1 for b in range(32)]).reshape(32, -1).mean(axis=1)
    assert np.abs(ones - 0.5).max() < 0.01  # 65536 samples a bit: sd 0.002
    counts = np.bincount((bits >> 28).ravel().astype(np.int64), minlength=16)
    expected = bits.size / 16
    assert ((counts - expected) ** 2 / expected).sum() < 37.7  # chi-square, 15 dof, p = 0.001


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_bernoulli_frequency(p):
    draws = np.asarray(bernoulli(jax.random.key(1), p, (100, 1000)))
    assert abs(draws.mean() - p) <= 5 * np.sqrt(p * (1 - p) / draws.size)


def test_normal_moments_and_tails():
    z = np.asarray(normal(jax.random.key(2), (400, 500)), np.float64)
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01  # 200k samples: sd 0.0022
    assert abs(np.mean(np.abs(z) < 1.0) - 0.682689) < 0.005
    assert abs(np.mean(np.abs(z) < 2.0) - 0.954500) < 0.003
    assert normal(jax.random.key(2), (3,), jnp.bfloat16).dtype == jnp.bfloat16
