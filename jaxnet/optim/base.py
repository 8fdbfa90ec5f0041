"""The optimizer protocol (optax's, exactly), `chain`, `apply_updates` and hyper-parameter look-up.

An optimizer is a :class:`GradientTransformation`: a pair of pure functions

* ``init(params) -> opt_state``
* ``update(grads, opt_state, params=None) -> (updates, opt_state)``

with the same shape as ``optax.GradientTransformation``, so a jaxnet optimizer drops into optax code
(``optax.chain``, ``optax.MultiSteps``) and an optax optimizer drops into jaxnet code. States are
``NamedTuple``s of arrays; step counts are ``int32`` arrays.

This module imports nothing from the rest of jaxnet, so ``jaxnet.optim`` stays independent.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule

NO_PARAMS_MSG = (
    "{name}: this transformation needs the current parameters; call "
    "`update(grads, opt_state, params)` with params."
)


class OptimizerError(ValueError):
    """A bad optimizer argument, or gradients that do not match the optimizer state.

    The message names the optimizer, the argument, the expected range and the received value.
    """


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``(init, update)``: optax's protocol, field for field.

    Attributes:
      init: ``init(params) -> opt_state``; ``opt_state`` is a pytree of arrays.
      update: ``update(grads, opt_state, params=None) -> (updates, new_opt_state)``; the new
        parameters are ``apply_updates(params, updates)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.sgd(learning_rate=0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, state, params)
      >>> optim.apply_updates(params, updates)["w"]
      Array([ 0.9, -2.1], dtype=float32)
    """

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]


class EmptyState(NamedTuple):
    """The state of a stateless transformation (no leaves)."""


def init_empty_state(params: Params) -> EmptyState:
    """``init`` of a stateless transformation."""
    del params
    return EmptyState()


def identity() -> GradientTransformation:
    """Pass updates through unchanged (the ``learning_rate=None`` case of some optimizers)."""

    def update(updates, state, params=None):
        del params
        return updates, state

    return GradientTransformation(init_empty_state, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    r"""Return ``params + updates`` leaf by leaf, keeping each parameter's dtype.

    .. math:: \theta \leftarrow \theta + u

    ``updates`` already carry the minus sign (``update`` returns ``-learning_rate * direction``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> p = {"b": jnp.ones(2, jnp.bfloat16)}
      >>> optim.apply_updates(p, {"b": jnp.full(2, 0.5, jnp.float32)})["b"].dtype
      dtype(bfloat16)
    """
    return jax.tree.map(
        lambda p, u: None if p is None else jnp.asarray(p + u).astype(jnp.asarray(p).dtype),
        params,
        updates,
        is_leaf=lambda x: x is None,
    )


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations one after another; the state is the tuple of their states.

    Each sub-state is a ``NamedTuple`` whose fields say what they hold (``mu``, ``nu``, ``count``,
    ``learning_rate``), so a value can be read back by name with :func:`lookup` or
    :func:`get_hyperparameter` instead of by position (``state[1].learning_rate``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_adam(),
      ...                   optim.scale_by_learning_rate(1e-3))
      >>> state = opt.init({"w": jnp.zeros(3)})
      >>> optim.get_hyperparameter(state, "learning_rate")
      Array(0.001, dtype=float32)
    """
    init_fns = tuple(t.init for t in transforms)
    update_fns = tuple(t.update for t in transforms)

    def init(params):
        return tuple(fn(params) for fn in init_fns)

    def update(updates, state, params=None):
        if not isinstance(state, tuple) or len(state) != len(update_fns):
            raise OptimizerError(
                f"chain: expected a state tuple of {len(update_fns)} sub-states (one per "
                f"transformation), received {type(state).__name__} of length "
                f"{len(state) if isinstance(state, tuple) else 'n/a'}; call `init` first."
            )
        new_state = []
        for sub_state, fn in zip(state, update_fns, strict=True):
            updates, sub_state = fn(updates, sub_state, params)
            new_state.append(sub_state)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


# --------------------------------------------------------------------------------------------
# Reading hyper-parameters and statistics back out of a state, by name.


def _named_fields(tree: PyTree, path: str = "state"):
    """Yield ``(path, field_name, value, owner)`` for every NamedTuple field in ``tree``."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        for name in tree._fields:
            value = getattr(tree, name)
            yield f"{path}.{name}", name, value, tree
            yield from _named_fields(value, f"{path}.{name}")
    elif isinstance(tree, (tuple, list)):
        for i, value in enumerate(tree):
            yield from _named_fields(value, f"{path}[{i}]")
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _named_fields(value, f"{path}[{key!r}]")


def lookup(opt_state: OptState, name: str) -> Any:
    """Return the first field called ``name`` in ``opt_state`` (depth first, chain order).

    Works on any nesting of tuples, lists, dicts and NamedTuples, so also on jaxnet states held
    inside optax wrappers (``optax.MultiSteps``, ``optax.chain``).

    Args:
      opt_state: an optimizer state.
      name: a field name such as ``"learning_rate"``, ``"count"``, ``"mu"`` or ``"nu"``.

    Raises:
      OptimizerError: no field has that name; the message lists the names there are.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> state = optim.adam(1e-3).init({"w": jnp.zeros(2)})
      >>> optim.lookup(state, "mu")
      {'w': Array([0., 0.], dtype=float32)}
    """
    names = []
    for _, field, value, _ in _named_fields(opt_state):
        if field == name:
            return value
        names.append(field)
    raise OptimizerError(
        f"lookup: no field {name!r} in the optimizer state; fields there are {sorted(set(names))}."
    )


def get_hyperparameter(opt_state: OptState, name: str = "learning_rate") -> Any:
    """Return a hyper-parameter carried in the state, by default the learning rate.

    jaxnet's :func:`scale_by_learning_rate` keeps the learning rate in its state as an array (the
    value used by the latest update; for a schedule, its value at the latest step), so it can be
    read back here and changed with :func:`set_hyperparameter` without recompiling.
    """
    return lookup(opt_state, name)


def set_hyperparameter(opt_state: OptState, name: str, value: Any) -> OptState:
    """Return a copy of ``opt_state`` with every field called ``name`` set to ``value``.

    The value is cast to the field's dtype, so a compiled step sees the same types and does not
    recompile. Under ``vmap`` over models, pass one value per model (shape ``(n_models,)``).
    A scheduled learning rate is recomputed from the step count at each update, so setting it
    only changes what :func:`get_hyperparameter` reports until the next update.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> state = optim.sgd(0.1).init(jnp.zeros(2))
      >>> state = optim.set_hyperparameter(state, "learning_rate", 0.01)
      >>> optim.get_hyperparameter(state)
      Array(0.01, dtype=float32)
    """
    found = False

    def replace(tree):
        nonlocal found
        if isinstance(tree, tuple) and hasattr(tree, "_fields"):
            changes = {}
            for field in tree._fields:
                old = getattr(tree, field)
                if field == name:
                    found = True
                    dtype = getattr(old, "dtype", None)
                    changes[field] = jnp.asarray(value, dtype=dtype)
                else:
                    changes[field] = replace(old)
            return tree._replace(**changes)
        if isinstance(tree, (tuple, list)):
            return type(tree)(replace(v) for v in tree)
        if isinstance(tree, dict):
            return type(tree)((k, replace(v)) for k, v in tree.items())
        return tree

    new_state = replace(opt_state)
    if not found:
        lookup(opt_state, name)  # raises with the list of available names
    return new_state


# --------------------------------------------------------------------------------------------
# Checks used by the transformations.


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer) and not callable(value)


def check_range(
    optimizer: str,
    argument: str,
    value: Any,
    low: float,
    high: float = float("inf"),
    *,
    high_inclusive: bool = False,
) -> None:
    """Raise :class:`OptimizerError` unless ``low <= value < high`` (``<= high`` if inclusive).

    Callables (schedules), ``None`` and traced values are not checked. Arrays are checked
    element-wise.
    """
    if value is None or not _is_concrete(value):
        return
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        values = np.asarray([value], dtype=np.float64)
    else:
        try:
            values = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise OptimizerError(
                f"{optimizer}: `{argument}` must be a number, array or schedule; "
                f"received {value!r}."
            ) from None
    upper_ok = values <= high if high_inclusive else values < high
    if not np.all((values >= low) & upper_ok):
        bracket = "]" if high_inclusive else ")"
        interval = f"[{low}, {high}{bracket}" if high != float("inf") else f">= {low}"
        shown = value if np.ndim(value) == 0 else values[~((values >= low) & upper_ok)][:5]
        raise OptimizerError(f"{optimizer}: `{argument}` must be in {interval}; received {shown}.")


def check_tree_match(optimizer: str, updates: Updates, reference: PyTree, what: str) -> None:
    """Raise :class:`OptimizerError` if ``updates`` and ``reference`` differ in structure or shapes.

    Runs on Python-side metadata only, so under ``jit`` it costs nothing at run time.
    """
    updates_def = jax.tree.structure(updates)
    reference_def = jax.tree.structure(reference)
    if updates_def != reference_def:
        raise OptimizerError(
            f"{optimizer}: the gradient tree does not match the {what} tree.\n"
            f"  gradients: {updates_def}\n"
            f"  {what}: {reference_def}\n"
            "Was the optimizer state initialised with different parameters?"
        )
    for u, r in zip(jax.tree.leaves(updates), jax.tree.leaves(reference), strict=True):
        if np.shape(u) != np.shape(r):
            shapes_u = [np.shape(x) for x in jax.tree.leaves(updates)]
            shapes_r = [np.shape(x) for x in jax.tree.leaves(reference)]
            raise OptimizerError(
                f"{optimizer}: gradient leaf shapes do not match the {what}.\n"
                f"  gradients: {shapes_u}\n  {what}: {shapes_r}"
            )


def canonicalize_dtype(dtype: Any) -> Any:
    """``None`` stays ``None``; anything else becomes a canonical JAX dtype."""
    return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the dtype's maximum instead of wrapping around."""
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        max_value = jnp.iinfo(count.dtype).max
    else:
        max_value = jnp.finfo(count.dtype).max
    max_value = jnp.array(max_value, count.dtype)
    return jnp.where(count < max_value, count + jnp.array(1, count.dtype), max_value)
