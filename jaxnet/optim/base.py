"""The optimizer protocol (optax's, exactly), `chain`, `apply_updates` and hyper-parameter look-up.

An optimizer is a :class:`GradientTransformation`: a pair of pure functions

* ``init(params) -> opt_state``
* ``update(grads, opt_state, params=None, **extra_args) -> (updates, opt_state)``

with the same shape as ``optax.GradientTransformationExtraArgs``, so a jaxnet optimizer drops into
optax code (``optax.chain``, ``optax.MultiSteps``) and an optax optimizer drops into jaxnet code.
Extra keyword arguments (``value=loss`` for ``optax.contrib.reduce_on_plateau``) pass through every
jaxnet transformation and ``chain`` to those that use them. States are ``NamedTuple``s of arrays;
step counts are ``int32`` arrays.

This module imports only :mod:`jaxnet.errors` from the rest of jaxnet, so ``jaxnet.optim`` stays
independent.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.errors import OptimizerError

PyTree = Any
Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule

NO_PARAMS_MSG = (
    "this transformation needs the current parameters; call "
    "`update(grads, opt_state, params)` with params."
)


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``(init, update)``: optax's protocol, field for field.

    Attributes:
      init: ``init(params) -> opt_state``; ``opt_state`` is a pytree of arrays.
      update: ``update(grads, opt_state, params=None, **extra_args) -> (updates,
        new_opt_state)``; the new parameters are ``apply_updates(params, updates)``. Extra
        keyword arguments (optax's ``GradientTransformationExtraArgs``, e.g. ``value=loss``) are
        passed on to the transformations that use them and ignored by the others.

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

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return GradientTransformation(init_empty_state, update)


def _takes_extra_args(update: Callable) -> bool:
    try:
        parameters = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):  # a builtin or C function without a signature
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def with_extra_args_support(transform) -> GradientTransformation:
    """Return ``transform`` with an ``update`` that accepts extra keyword arguments.

    A transformation whose ``update`` already takes ``**extra_args`` (every jaxnet one, optax's
    ``GradientTransformationExtraArgs``) keeps its functions; for another (a plain
    ``optax.GradientTransformation``) the extra arguments are dropped before calling it, as in
    optax's function of the same name.
    """
    if _takes_extra_args(transform.update):
        return GradientTransformation(transform.init, transform.update)

    def update(updates, state, params=None, **extra_args):
        del extra_args
        return transform.update(updates, state, params)

    return GradientTransformation(transform.init, update)


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
        lambda p, u: None if p is None else add_promoted(p, u).astype(jnp.asarray(p).dtype),
        params,
        updates,
        is_leaf=lambda x: x is None,
    )


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations one after another; the state is the tuple of their states.

    Extra keyword arguments of ``update`` (``value=loss``, ...) go to every transformation that
    accepts them (see :func:`with_extra_args_support`), as in ``optax.chain``.

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
    transforms = tuple(with_extra_args_support(t) for t in transforms)
    init_fns = tuple(t.init for t in transforms)
    update_fns = tuple(t.update for t in transforms)

    def init(params):
        return tuple(fn(params) for fn in init_fns)

    def update(updates, state, params=None, **extra_args):
        if not isinstance(state, tuple) or len(state) != len(update_fns):
            raise OptimizerError(
                f"expected a state tuple of {len(update_fns)} sub-states (one per "
                f"transformation), received {type(state).__name__} of length "
                f"{len(state) if isinstance(state, tuple) else 'n/a'}; call `init` first.",
                ("chain",),
            )
        new_state = []
        for sub_state, fn in zip(state, update_fns, strict=True):
            updates, sub_state = fn(updates, sub_state, params, **extra_args)
            new_state.append(sub_state)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def named(name: str, build: Callable[[], GradientTransformation]) -> GradientTransformation:
    """``build()``, with every :class:`OptimizerError` of its parts labelled ``name``.

    An optimizer (``adam``) is built from transformations (``scale_by_adam``) that check their own
    arguments and gradients. Errors they raise while building, in ``init`` or in ``update`` come
    out with the optimizer's name first in their path::

        adam/scale_by_adam: b1 must be in [0, 1), got 1.5
    """

    def labelled(error: OptimizerError) -> OptimizerError:
        error.path = (name, *error.path)
        return error

    try:
        transform = with_extra_args_support(build())
    except OptimizerError as error:
        raise labelled(error) from None

    def init(params):
        try:
            return transform.init(params)
        except OptimizerError as error:
            raise labelled(error) from None

    def update(updates, state, params=None, **extra_args):
        try:
            return transform.update(updates, state, params, **extra_args)
        except OptimizerError as error:
            raise labelled(error) from None

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
        f"no field {name!r} in the optimizer state; fields there are {sorted(set(names))}.",
        ("lookup",),
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


def check_tree_match(optimizer: str, updates: Updates, reference: PyTree, what: str) -> None:
    """Raise :class:`OptimizerError` if ``updates`` and ``reference`` differ in structure or shapes.

    Runs on Python-side metadata only, so under ``jit`` it costs nothing at run time.
    """
    updates_def = jax.tree.structure(updates)
    reference_def = jax.tree.structure(reference)
    if updates_def != reference_def:
        raise OptimizerError(
            f"the gradient tree does not match the {what} tree.\n"
            f"  gradients: {updates_def}\n"
            f"  {what}: {reference_def}\n"
            "Was the optimizer state initialised with different parameters?",
            (optimizer,),
        )
    for u, r in zip(jax.tree.leaves(updates), jax.tree.leaves(reference), strict=True):
        if np.shape(u) != np.shape(r):
            shapes_u = [np.shape(x) for x in jax.tree.leaves(updates)]
            shapes_r = [np.shape(x) for x in jax.tree.leaves(reference)]
            raise OptimizerError(
                f"gradient leaf shapes do not match the {what}.\n"
                f"  gradients: {shapes_u}\n  {what}: {shapes_r}",
                (optimizer,),
            )


def reject_complex(optimizer: str, params: PyTree) -> None:
    """Raise :class:`OptimizerError` if any leaf of ``params`` is complex.

    For the rules that optax does not define on complex numbers either (Lion's sign, AdaDelta's
    squared updates): there, ``g * g`` is not ``|g|^2`` and a silent wrong answer would follow.
    """
    paths = [
        jax.tree_util.keystr(path) or "(the root)"
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if jnp.iscomplexobj(leaf)
    ]
    if paths:
        raise OptimizerError(
            f"complex parameters are not supported (nor by optax's version); complex leaves: "
            f"{paths[:5]}. Optimise the real and imaginary parts as separate real parameters.",
            (optimizer,),
        )


def promoted_dtype(*arrays_or_dtypes) -> np.dtype:
    """The dtype JAX's standard promotion gives these operands (``bfloat16`` and ``float32`` ->
    ``float32``), also under ``jax_numpy_dtype_promotion="strict"``: the dtype to cast to
    explicitly before mixing them."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(*arrays_or_dtypes)


def promote(*arrays) -> tuple[jax.Array, ...]:
    """The arrays cast explicitly to their :func:`promoted_dtype`: what standard promotion would
    do implicitly, so mixing them is also accepted under strict promotion."""
    arrays = tuple(jnp.asarray(a) for a in arrays)
    wide = promoted_dtype(*arrays)
    return tuple(a.astype(wide) for a in arrays)


def add_promoted(a, b) -> jax.Array:
    """``a + b`` at their promoted dtype (bfloat16 params plus float32 updates: added in float32),
    cast explicitly: what standard promotion computes, also under strict promotion."""
    a, b = promote(a, b)
    return a + b


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
