"""``jax.random``'s numbers, drawn faster: Threefry-2x32 as plain elementwise JAX operations.

With its default ``jax_threefry_partitionable=True``, ``jax.random`` hashes each element's
row-major index with Threefry-2x32 (Salmon et al., 2011). The same hash written out as ``uint32``
arithmetic in the array's own shape lets XLA fuse all 20 rounds into one vectorised loop, where
``jax.random``'s lowering loops over the rounds: a (32, 256) dropout mask costs ~14 us instead of
~95 us on XLA:CPU. The numbers are **the same bits** as ``jax.random.bits``/``uniform``/
``bernoulli``/``normal`` for the default (Threefry) keys and float32 (tested), so swapping one
for the other changes no result. Being plain JAX, they are exact under ``vmap`` and identical on
every backend.

>>> key = jax.random.key(0)
>>> keep = bernoulli(key, 0.8, (2, 3))          # == jax.random.bernoulli(key, 0.8, (2, 3))
>>> noise = normal(key, (2, 3))                 # == jax.random.normal(key, (2, 3))
>>> keep.dtype, noise.dtype
(dtype('bool'), dtype('float32'))

The same hash runs on NumPy arrays: :func:`host_permutation` is :func:`permutation` computed on
the host from a Threefry key's data (:func:`key_words`), with no program to compile (``fit``
orders each epoch with it).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnet.errors import ConfigError

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0, k1, x0, x1):
    """The Threefry-2x32 block cipher, 20 rounds, on ``uint32`` arrays of one shape (JAX's or
    NumPy's): ``(y0, y1)``. (NumPy's are updated in place after the first addition, which
    copies them: half the time of new arrays at every step.)"""
    keys = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + keys[0], x1 + keys[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 += x1
            x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
            x1 ^= x0
        x0 += keys[(i + 1) % 3]
        x1 += keys[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def random_bits(key, shape) -> jax.Array:
    """``uint32`` bits of ``shape`` (``jax.random.bits(key, shape, jnp.uint32)`` for a Threefry
    key; other key types are folded to 64 bits and hashed the same way)."""
    shape = tuple(int(n) for n in shape)
    _size(shape)  # (at most 2**32 - 1 numbers per key)
    words = jax.random.key_data(key).reshape(-1, 2).astype(jnp.uint32)
    k0, k1 = words[0, 0], words[0, 1]
    for row in range(1, words.shape[0]):
        k0, k1 = k0 ^ words[row, 0], k1 ^ words[row, 1]
    index = jnp.zeros(shape, jnp.uint32)
    for axis in range(len(shape)):
        stride = jnp.uint32(math.prod(shape[axis + 1 :]))
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * stride
    high, low = threefry2x32(k0, k1, jnp.zeros(shape, jnp.uint32), index)
    return high ^ low


def uniform(key, shape, minval=0.0, maxval=1.0) -> jax.Array:
    """float32 uniform in ``[minval, maxval)``, in steps of ``2**-23`` of the range."""
    return uniform_from_bits(random_bits(key, shape), minval, maxval)


def bernoulli(key, p: float, shape) -> jax.Array:
    """Booleans of ``shape``, each ``True`` with probability ``p``."""
    return uniform(key, shape) < jnp.float32(p)


def normal(key, shape, dtype=jnp.float32) -> jax.Array:
    """Standard normal samples ``sqrt(2) erfinv(u)``, ``u`` uniform in ``(-1, 1)``; computed in
    float32 (equal to ``jax.random.normal`` there) and cast to ``dtype``."""
    return normal_from_bits(random_bits(key, shape)).astype(dtype)


# -- float32 numbers from their bits, as jax.random makes them ------------------------------------
def uniform_from_bits(bits, minval=0.0, maxval=1.0) -> jax.Array:
    """``jax.random.uniform``'s float32 numbers in ``[minval, maxval)`` from their ``uint32``
    ``bits`` (the same operations: the same numbers for the same bits)."""
    f32 = np.float32
    minval = lax.broadcast_to_rank(lax.convert_element_type(minval, f32), np.ndim(bits))
    maxval = lax.broadcast_to_rank(lax.convert_element_type(maxval, f32), np.ndim(bits))
    mantissa = lax.shift_right_logical(bits, jnp.array(9, np.uint32))
    mantissa = lax.bitwise_or(mantissa, jnp.asarray(np.array(1.0, f32).view(np.uint32)))
    floats = lax.bitcast_convert_type(mantissa, f32) - jnp.array(1.0, f32)
    return lax.max(minval, lax.reshape(floats * (maxval - minval) + minval, np.shape(bits)))


def normal_from_bits(bits) -> jax.Array:
    """``jax.random.normal``'s float32 numbers from their ``uint32`` ``bits``."""
    f32 = np.float32
    low = np.nextafter(np.array(-1.0, f32), np.array(0.0, f32), dtype=f32)
    u = uniform_from_bits(bits, low, np.array(1.0, f32))
    return lax.mul(np.array(np.sqrt(2), f32), lax.erf_inv(u))


def truncated_normal_from_bits(bits, lower: float, upper: float) -> jax.Array:
    """``jax.random.truncated_normal``'s float32 numbers in ``(lower, upper)`` from their
    ``uint32`` ``bits``."""
    f32 = np.float32
    sqrt2 = np.array(np.sqrt(2), f32)
    lower, upper = lax.convert_element_type(lower, f32), lax.convert_element_type(upper, f32)
    u = uniform_from_bits(bits, lax.erf(lower / sqrt2), lax.erf(upper / sqrt2))
    out = sqrt2 * lax.erf_inv(u)
    return jnp.clip(out, lax.nextafter(lower, np.array(np.inf, f32)),
                    lax.nextafter(upper, np.array(-np.inf, f32)))  # fmt: skip


def permutation(key, n: int) -> jax.Array:
    """``jax.random.permutation(key, n)``: ``arange(n)`` sorted by 32 random bits per element,
    in as many rounds as ``jax.random`` takes (one up to 1625 elements), each round's bits drawn
    by :func:`random_bits` from the next split of ``key``."""
    x = jnp.arange(n)
    for _ in range(_sort_rounds(n)):
        key, subkey = jax.random.split(key)
        _, x = jax.lax.sort_key_val(random_bits(subkey, (n,)), x)
    return x


# -- the same numbers on the host ----------------------------------------------------------------
def key_words(key) -> np.ndarray | None:
    """The ``(2,)`` ``uint32`` data of a Threefry key (a typed key, or a raw
    ``jax.random.PRNGKey`` while Threefry is the default), on the host; ``None`` for another
    kind of key."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32" or key.shape:
            return None
        return np.asarray(jax.random.key_data(key))
    if jax.config.jax_default_prng_impl != "threefry2x32" or np.shape(key) != (2,):
        return None
    return np.asarray(key, np.uint32)


def host_fold_in(words: np.ndarray, data: int) -> np.ndarray:
    """``jax.random.fold_in`` on a Threefry key's data (``int`` data, taken modulo ``2**32``)."""
    y0, y1 = threefry2x32(words[0], words[1], np.zeros(1, np.uint32),
                          np.array([data % 2**32], np.uint32))  # fmt: skip
    return np.concatenate([y0, y1])


def host_split(words: np.ndarray, num: int = 2) -> np.ndarray:
    """``jax.random.split`` on a Threefry key's data: ``(num, 2)`` key data, as the current
    ``jax_threefry_partitionable`` setting splits."""
    if jax.config.jax_threefry_partitionable:
        index = np.arange(num, dtype=np.uint32)
        return np.stack(threefry2x32(words[0], words[1], np.zeros_like(index), index), axis=1)
    counts = np.arange(2 * num, dtype=np.uint32)
    y0, y1 = threefry2x32(words[0], words[1], counts[:num], counts[num:])
    return np.concatenate([y0, y1]).reshape(num, 2)


def host_permutation(words: np.ndarray, n: int) -> np.ndarray:
    """:func:`permutation` of ``n`` (``int32``) for the Threefry key whose data is ``words``,
    computed by NumPy: the same order (a stable sort, as ``jax.lax.sort_key_val``'s)."""
    x = np.arange(n, dtype=np.int32)
    for _ in range(_sort_rounds(n)):
        words, subkey = host_split(words)
        x = x[np.argsort(host_bits(subkey, (n,)), kind="stable")]
    return x


def host_bits(words: np.ndarray, shape) -> np.ndarray:
    """:func:`random_bits` of ``shape`` for the Threefry key whose data is ``words``, computed by
    NumPy (each element's row-major index hashed: ``jax_threefry_partitionable``'s bits)."""
    index = np.arange(_size(shape), dtype=np.uint32)
    high, low = threefry2x32(words[0], words[1], np.zeros_like(index), index)
    return (high ^ low).reshape(shape)


def host_jax_bits(words: np.ndarray, shape) -> np.ndarray:
    """``jax.random.bits(key, shape, jnp.uint32)`` for the Threefry key whose data is ``words``,
    computed by NumPy, as the current ``jax_threefry_partitionable`` setting draws them."""
    if jax.config.jax_threefry_partitionable:
        return host_bits(words, shape)
    n = _size(shape)  # the other scheme hashes the counts' first half with their second
    counts = np.zeros(n + n % 2, np.uint32)
    counts[:n] = np.arange(n, dtype=np.uint32)
    y0, y1 = threefry2x32(words[0], words[1], *np.split(counts, 2))
    return np.concatenate([y0, y1])[:n].reshape(shape)


def _size(shape) -> int:
    n = math.prod(int(d) for d in shape)
    if n >= 2**32:
        raise ConfigError(f"at most 2**32 - 1 random numbers per key, asked for {tuple(shape)}")
    return n


@functools.partial(jax.jit, static_argnums=2)
def folded_permutation(key, data, n: int) -> jax.Array:
    """:func:`permutation` of ``n`` (``int32``) for ``key`` folded with each of ``data`` (an
    ``int32`` vector) in turn: the program behind an epoch's order for a key of another kind
    than Threefry's, whose order NumPy computes (:func:`host_permutation`)."""
    for value in data:
        key = jax.random.fold_in(key, value)
    return permutation(key, n).astype(jnp.int32)


def _sort_rounds(n: int) -> int:
    """How many sorts by 32 random bits ``jax.random.permutation`` takes for ``n`` elements."""
    return int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))


# -- an initialisation whose random bits come from the host --------------------------------------
class HostKey(NamedTuple):
    """A Threefry key's data (``(2,)`` ``uint32``) on the host, handed to a model's ``init`` by
    :func:`init_on_host`: :func:`split` and :func:`fold_in` derive keys from it with NumPy, and
    jaxnet's initializers take their float32 numbers' bits from :func:`drawn_bits`. ``path``:
    how it was derived from the key ``init`` was given (``("split", num, i)`` and
    ``("fold_in", data)`` steps), so another key's draws can be computed without tracing
    ``init`` again."""

    words: np.ndarray
    path: tuple = ()


def split(key, num: int = 2):
    """``jax.random.split(key, num)``; of a :class:`HostKey`, a tuple of ``num`` host keys."""
    if isinstance(key, HostKey):
        return tuple(HostKey(words, (*key.path, ("split", num, i)))
                     for i, words in enumerate(host_split(key.words, num)))  # fmt: skip
    return jax.random.split(key, num)


def fold_in(key, data: int):
    """``jax.random.fold_in(key, data)``; of a :class:`HostKey`, a host key."""
    if isinstance(key, HostKey):
        return HostKey(host_fold_in(key.words, data), (*key.path, ("fold_in", data)))
    return jax.random.fold_in(key, data)


def derived(words: np.ndarray, path: tuple) -> np.ndarray:
    """The data of the key a :class:`HostKey`'s ``path`` derives from the key with data
    ``words``."""
    for step in path:
        words = host_split(words, step[1])[step[2]] if step[0] == "split" else (
            host_fold_in(words, step[1]))  # fmt: skip
    return words


def key_like(words: np.ndarray, key):
    """A key with data ``words`` of ``key``'s kind: typed, or a raw ``uint32`` array."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(words, impl=jax.random.key_impl(key))
    return jnp.asarray(words, jnp.uint32)


_SUPPLY = threading.local()  # .draw(words, shape) -> bits, inside init_on_host
# The most numbers init_on_host draws with NumPy (~35-55 ns each on one core): a cold fit of a
# 784-w-w-10 MLP gained ~0.2 s at w = 1024 and 2048 (1.8 and 5.8 million numbers) and lost
# ~0.3 s at w = 4096 (20 million), where XLA's compiled Threefry is the cheaper way.
HOST_DRAWS = 2**23


def drawn_bits(key: HostKey, shape, dtype=np.float32) -> jax.Array:
    """The ``uint32`` bits of a float32 draw of ``shape`` by ``key`` inside :func:`init_on_host`:
    computed by NumPy when it looks at the initialisation, an argument of the program it builds.
    (``jax.random`` draws other dtypes from other bits: their initialisation keeps JAX keys.)"""
    draw = getattr(_SUPPLY, "draw", None)
    if draw is None:
        raise ConfigError("a HostKey draws only inside jaxnet.random.init_on_host", ("init",))
    if np.dtype(dtype) != np.float32:
        raise ConfigError(f"a HostKey draws float32 numbers, not {np.dtype(dtype)}", ("init",))
    return draw(key, tuple(int(n) for n in shape))


@contextlib.contextmanager
def _supplying(draw):
    _SUPPLY.draw = draw
    try:
        yield
    finally:
        _SUPPLY.draw = None


def init_on_host(init: Callable, words: np.ndarray):
    """``(program, bits)`` with ``program(bits)`` equal to ``init(key)``, bit for bit, for the
    Threefry key whose data is ``words``; ``program`` draws no random numbers. ``words`` of
    shape ``(n, 2)``, ``n`` keys' data: each array of ``bits`` has a leading axis of ``n``, for
    ``jax.vmap(program)`` (one key's ``init`` equal to the ``vmap`` over keys).

    ``init`` is first traced for shapes with a :class:`HostKey`, and NumPy derives its keys and
    computes its draws' bits (:func:`host_jax_bits`); ``program`` then turns those bits into
    numbers as ``jax.random`` does (:func:`uniform_from_bits` and its siblings). XLA:CPU compiles
    Threefry's hash rounds slowly: most of an MLP's initialisation program is them. ``None``
    where this cannot be: ``init`` fails with a host key (it uses its key otherwise than through
    :func:`split`, :func:`fold_in` and float32 draws of jaxnet's initializers; the JAX key then
    runs ``init``, and an error of ``init``'s own is raised there), or it draws more than
    :data:`HOST_DRAWS` numbers (NumPy's hashing then costs more than compiling Threefry).

    >>> dense = jaxnet.Dense(3)
    >>> init = lambda key: dense.init(key, (2,))[1]  # its params
    >>> program, bits = init_on_host(init, key_words(jax.random.key(0)))
    >>> [b.shape for b in bits]  # one draw, the kernel's (the bias is zeros)
    [(2, 3)]
    >>> ours, theirs = jax.jit(program)(bits), jax.jit(init)(jax.random.key(0))
    >>> bool((ours["w"] == theirs["w"]).all())
    True
    """
    words = np.asarray(words, np.uint32)
    first = words if words.ndim == 1 else words[0]
    draws: list[tuple[tuple, tuple]] = []  # each draw's key path and shape

    def record(key, shape):  # (a trace for shapes: the numbers come below)
        draws.append((key.path, shape))
        return np.zeros(shape, np.uint32)

    try:
        with _supplying(record):
            jax.eval_shape(lambda: init(HostKey(first)))
    except Exception:  # noqa: BLE001 - see the docstring: the JAX key's run says what is wrong
        return None
    if sum(math.prod(shape) for _, shape in draws) * len(np.atleast_2d(words)) > HOST_DRAWS:
        return None
    if words.ndim == 1:
        bits = [host_jax_bits(derived(words, path), shape) for path, shape in draws]
    else:
        bits = [np.stack([host_jax_bits(derived(w, path), shape) for w in words])
                for path, shape in draws]  # fmt: skip

    def program(drawn):
        supply = iter(drawn)
        with _supplying(lambda key, shape: next(supply)):
            return init(HostKey(first))

    return program, bits
