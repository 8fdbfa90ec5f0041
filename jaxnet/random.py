"""Random numbers for noise layers: Threefry-2x32 as plain elementwise JAX operations.

``jax.random`` draws its bits with the same Threefry-2x32 hash, but through a flat counter array
that XLA:CPU runs several times slower: a dropout mask for a (32, 256) batch costs ~120 us there,
more than the layer's matrix products, and 13-22 us here (one counter per element, in the
array's own shape, so XLA fuses all 20 rounds into one vectorised loop). The hash is the same
function as ``jax.extend.random.threefry_2x32`` (tested); the bits differ from ``jax.random``'s
only in how counters are laid out. Being plain JAX, it is exact under ``vmap`` (every key gets
the bits it would get alone), identical on every backend, and reproducible bit for bit.

>>> keep = bernoulli(key, 0.8, x.shape)         # a dropout mask
>>> noise = normal(key, x.shape, x.dtype)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0, k1, x0, x1):
    """The Threefry-2x32 block cipher, 20 rounds (Salmon et al., 2011), on ``uint32`` arrays."""
    keys = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
    x0, x1 = x0 + keys[0], x1 + keys[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + keys[(i + 1) % 3]
        x1 = x1 + keys[(i + 2) % 3] + jnp.uint32(i + 1)
    return x0, x1


def random_bits(key, shape) -> jax.Array:
    """``uint32`` bits of ``shape``: Threefry of each element's row-major index under ``key``."""
    shape = tuple(int(n) for n in shape)
    words = jax.random.key_data(key).reshape(-1, 2).astype(jnp.uint32)
    k0, k1 = words[0, 0], words[0, 1]
    for row in range(1, words.shape[0]):  # keys with more than 64 bits (rbg): folded in
        k0, k1 = k0 ^ words[row, 0], k1 ^ words[row, 1]
    index = jnp.zeros(shape, jnp.uint32)
    for axis in range(len(shape)):
        stride = math.prod(shape[axis + 1 :])
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
    return threefry2x32(k0, k1, index, jnp.zeros(shape, jnp.uint32))[0]


def bernoulli(key, p: float, shape) -> jax.Array:
    """Booleans of ``shape``, each ``True`` with probability ``p`` (to ``2**-32``)."""
    return random_bits(key, shape) < jnp.uint32(min(round(p * 2.0**32), 2**32 - 1))


def normal(key, shape, dtype=jnp.float32) -> jax.Array:
    """Standard normal samples: ``sqrt(2) erfinv(u)``, ``u`` uniform in ``(-1, 1)`` in steps of
    ``2**-22`` (as ``jax.random.normal``), computed in float32 and cast to ``dtype``."""
    mantissa = (random_bits(key, shape) >> 9) | jnp.uint32(0x3F800000)
    unit = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0  # [0, 1)
    low = jnp.nextafter(jnp.float32(-1.0), jnp.float32(0.0))
    u = jnp.maximum(low, 2.0 * unit - 1.0)
    return (jnp.sqrt(jnp.float32(2.0)) * jax.lax.erf_inv(u)).astype(dtype)
