"""Weight penalties, activity regularization and weight constraints, selected by parameter path.

A parameter's **path** is its keys joined by ``/``: ``"dense_0/w"``, ``"dense_0/b"``,
``"block_1/dense_0/w"``. A **pattern** selects paths with shell wildcards (``*``, ``?``); it matches
a whole path, a path's tail (``"w"`` selects every ``.../w``) or a whole subtree (``"dense_0"``
selects ``dense_0/w`` and ``dense_0/b``); ``*`` may span several levels. ``paths=`` takes a
pattern, a list of patterns or a function ``path -> bool``. The default, :func:`is_kernel`, selects
every weight matrix (``w``, and a recurrent layer's ``w_x``/``w_h``) and no bias or normalization
parameter, like Keras's ``kernel_regularizer``.

Penalties are functions ``penalty(params) -> scalar`` for ``fit(..., penalty=)`` and
``make_train_step(..., penalty=)``:

>>> penalty = l2(1e-4)                                   # every kernel, no bias
>>> penalty = combine(l1(1e-5, paths="dense_0/w"), l2(1e-4, paths="dense_2/w"))

Constraints are projections ``w -> w'`` applied after every update by wrapping the optimizer:

>>> opt = constrain(optim.adam(1e-3), {"dense_*/w": max_norm(3.0)})

Scales follow Keras: ``l2(s) = s * sum(w**2)`` (no 1/2), so ``l2(s)`` adds ``2 * s * w`` to the
gradient — weight decay with rate ``2 * s`` under plain SGD.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from jaxnet import registry
from jaxnet.core import Layer, constructor_info, path_string, sublayers
from jaxnet.errors import ConfigError, check_range
from jaxnet.layers._checks import check_floating
from jaxnet.optim.base import GradientTransformation

# Keras's backend epsilon, used by the norm constraints to avoid dividing by a zero norm.
_NORM_EPSILON = 1e-7


# ----------------------------------------------------------------------------- paths


def param_paths(params) -> list[str]:
    """Every leaf's path, in tree order: ``["dense_0/b", "dense_0/w", "dense_2/b", ...]``."""
    return [path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def pattern_matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` selects ``path``: the whole path, its tail, or a subtree of it."""
    return any(
        fnmatch.fnmatchcase(path, form)
        for form in (pattern, f"*/{pattern}", f"{pattern}/*", f"*/{pattern}/*")
    )


def is_kernel(path: str) -> bool:
    """The default selection: leaves named ``w`` or ``w_*`` (weight matrices), not biases."""
    leaf = path.rsplit("/", 1)[-1]
    return leaf == "w" or leaf.startswith("w_")


def _selector(paths) -> Callable[[str], bool]:
    if callable(paths):
        return paths
    patterns = [paths] if isinstance(paths, str) else list(paths)
    return lambda path: any(pattern_matches(p, path) for p in patterns)


def select(params, paths=is_kernel, *, owner: str = "regularizer") -> dict:
    """``{path: leaf}`` for the leaves of ``params`` that ``paths`` selects.

    Raises :class:`ConfigError` listing the valid paths when a pattern selects nothing (a typo such
    as ``"dense_1/w"`` for a layer that is called ``dense_2``).
    """
    leaves = {path_string(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    if not callable(paths):
        for pattern in [paths] if isinstance(paths, str) else paths:
            if not any(pattern_matches(pattern, path) for path in leaves):
                raise ConfigError(
                    f"path pattern {pattern!r} matches no parameter; valid paths are "
                    f"{sorted(leaves)}",
                    (owner,),
                )
    chosen = _selector(paths)
    selected = {path: leaf for path, leaf in leaves.items() if chosen(path)}
    if not selected:
        raise ConfigError(f"paths selects no parameter; valid paths are {sorted(leaves)}", (owner,))
    return selected


# ----------------------------------------------------------------------------- penalties


def elastic_net(l1: float = 0.01, l2: float = 0.01, *, paths=is_kernel) -> Callable:
    """``penalty(params) = l1 * sum|w| + l2 * sum w**2`` over the selected leaves.

    >>> penalty = elastic_net(1e-5, 1e-4)          # kernels of every layer
    >>> value = penalty({"dense_0": {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}})
    >>> round(float(value), 8)                     # 4e-5 + 4e-4: the bias is not a kernel
    0.00044
    """
    return _penalty(l1, l2, paths, "elastic_net")


def _penalty(l1: float, l2: float, paths, owner: str) -> Callable:
    check_range(owner, "l1" if owner == "elastic_net" else "scale", l1, 0.0)
    check_range(owner, "l2" if owner == "elastic_net" else "scale", l2, 0.0)

    def penalty(params):
        total = jnp.zeros((), jnp.float32)
        for leaf in select(params, paths, owner=owner).values():
            if l1:
                total = total + l1 * jnp.sum(jnp.abs(leaf))
            if l2:
                total = total + l2 * jnp.sum(jnp.square(leaf))
        return total

    return penalty


def l1(scale: float = 0.01, *, paths=is_kernel) -> Callable:
    """Lasso: ``scale * sum|w|`` over the selected leaves; drives small weights to exactly zero."""
    return _penalty(scale, 0.0, paths, "l1")


def l2(scale: float = 0.01, *, paths=is_kernel) -> Callable:
    """Ridge: ``scale * sum w**2`` over the selected leaves (Keras's ``l2``; no factor 1/2)."""
    return _penalty(0.0, scale, paths, "l2")


l1_l2 = elastic_net  # Keras's name


def combine(*penalties: Callable) -> Callable:
    """The sum of several penalties, e.g. a different scale per layer."""

    def penalty(params):
        return sum((p(params) for p in penalties), jnp.zeros((), jnp.float32))

    return penalty


# ----------------------------------------------------------------------------- activity


@registry.layer
def ActivityRegularization(
    l1: float = 0.0, l2: float = 0.0, name: str = "activity_regularization"
) -> Layer:
    """Identity layer whose input's size is penalised in training: ``l1 * |x| + l2 * x**2``.

    The penalty is summed over features and averaged over the batch (Keras 2's convention, so it
    does not grow with the batch size). The layer declares ``info["activity_penalty"] =
    {"l1": l1, "l2": l2}``; :func:`~jaxnet.objective.make_loss` adds :func:`activity_penalty` of
    the outputs the training forward pass records, wherever the layer sits in the model.

    >>> from jaxnet import Dense, serial
    >>> model = serial(Dense(100), jax.nn.relu, ActivityRegularization(l1=1e-4), Dense(10))
    """
    check_range(name, "l1", l1, 0.0)
    check_range(name, "l2", l2, 0.0)

    def init(key, input_shape):
        del key
        return tuple(input_shape), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key
        if train:
            check_floating(name, x)
        return x, state

    info = {
        "activity_penalty": {"l1": l1, "l2": l2},
        **constructor_info("ActivityRegularization", l1=l1, l2=l2, name=name),
    }
    return Layer(init, apply, name, info)


def activity_penalty(model: Layer, outputs) -> jax.Array | float:
    """The activity penalty of ``model``'s layers on one forward pass (Python ``0.0`` if none).

    For every layer inside ``model`` whose ``info["activity_penalty"]`` is ``{"l1", "l2"}``:
    ``(l1 * sum|y| + l2 * sum y**2) / batch`` of its output ``y``, read from ``outputs``
    (``{path: output}`` of :func:`~jaxnet.core.apply_with_outputs`).
    """
    total = 0.0
    layers = sublayers(model) or {model.name: model}
    for path, layer in layers.items():
        spec = layer.info.get("activity_penalty")
        if spec:
            y = outputs[path]
            batch = y.shape[0] if y.ndim else 1
            value = (spec["l1"] * jnp.sum(jnp.abs(y)) + spec["l2"] * jnp.sum(jnp.square(y))) / batch
            total = total + value.astype(jnp.float32)
    return total


# ----------------------------------------------------------------------------- constraints


def _norms(w, axis):
    return jnp.sqrt(jnp.sum(jnp.square(w), axis=axis, keepdims=True))


def max_norm(max_value: float = 2.0, axis=0) -> Callable:
    """Rescale each unit's weight vector whose L2 norm exceeds ``max_value`` down to it.

    ``axis=0`` (Keras's default) takes norms over a Dense kernel's inputs ``(in, units)``: one
    norm per unit. For a conv kernel ``(h, w, in, out)`` use ``axis=(0, 1, 2)``.
    """
    check_range("max_norm", "max_value", max_value, 0.0, low_open=True)

    def project(w):
        norms = _norms(w, axis)
        return w * (jnp.clip(norms, 0.0, max_value) / (_NORM_EPSILON + norms))

    return project


def min_max_norm(
    min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis=0
) -> Callable:
    """Move each unit's weight-vector norm into ``[min_value, max_value]``.

    ``rate=1`` projects exactly; ``rate < 1`` moves the norm only that fraction of the way (Keras).
    """
    check_range("min_max_norm", "min_value", min_value, 0.0)
    check_range("min_max_norm", "max_value", max_value, min_value)
    check_range("min_max_norm", "rate", rate, 0.0, 1.0)

    def project(w):
        norms = _norms(w, axis)
        desired = rate * jnp.clip(norms, min_value, max_value) + (1.0 - rate) * norms
        return w * (desired / (_NORM_EPSILON + norms))

    return project


def unit_norm(axis=0) -> Callable:
    """Scale each unit's weight vector to L2 norm 1."""

    def project(w):
        return w / (_NORM_EPSILON + _norms(w, axis))

    return project


def non_neg() -> Callable:
    """Set negative weights to zero."""

    def project(w):
        return w * (w >= 0).astype(w.dtype)

    return project


def _constraint_table(params, constraints) -> dict:
    """``{path: [project, ...]}`` from ``{pattern: project}`` or ``fn(path) -> project | None``."""
    paths = param_paths(params)
    if callable(constraints) and not isinstance(constraints, Mapping):
        table = {path: constraints(path) for path in paths}
        return {path: [fn] for path, fn in table.items() if fn is not None}
    table: dict[str, list] = {}
    for pattern, fn in constraints.items():
        matched = select(params, pattern, owner="constrain")
        for path in matched:
            table.setdefault(path, []).append(fn)
    return table


def project(params, constraints):
    """Apply ``constraints`` (``{pattern: constraint}`` or ``fn(path) -> constraint | None``).

    Leaves matched by several patterns get every matching constraint, in the mapping's order.
    """
    table = _constraint_table(params, constraints)

    def apply(key_path, leaf):
        for fn in table.get(path_string(key_path), ()):
            leaf = fn(leaf)
        return leaf

    return jax.tree_util.tree_map_with_path(apply, params)


def constrain(optimizer, constraints) -> GradientTransformation:
    """Wrap an optax-protocol optimizer so the parameters satisfy ``constraints`` after every step.

    ``update`` returns ``project(params + updates) - params``; so it needs ``params``
    (``fit`` and ``make_train_step`` pass them). Works with jaxnet and optax optimizers.

    >>> opt = constrain(optim.sgd(0.1), {"dense_0/w": max_norm(3.0), "dense_2/w": non_neg()})
    """
    if not callable(constraints) and not isinstance(constraints, Mapping):
        raise ConfigError(
            f"constraints must be a mapping {{pattern: constraint}} or a function of the path, "
            f"got {type(constraints).__name__}",
            ("constrain",),
        )

    def init(params):
        return optimizer.init(params)

    def update(updates, opt_state, params=None):
        if params is None:
            raise ConfigError(
                "constrain needs the current parameters: call update(grads, opt_state, params)",
                ("constrain",),
            )
        updates, opt_state = optimizer.update(updates, opt_state, params)
        stepped = jax.tree.map(lambda p, u: p + u, params, updates)
        constrained = project(stepped, constraints)
        return jax.tree.map(lambda c, p: c - p, constrained, params), opt_state

    return GradientTransformation(init, update)


__all__ = [
    "ActivityRegularization",
    "activity_penalty",
    "combine",
    "constrain",
    "elastic_net",
    "is_kernel",
    "l1",
    "l1_l2",
    "l2",
    "max_norm",
    "min_max_norm",
    "non_neg",
    "param_paths",
    "project",
    "select",
    "unit_norm",
]
