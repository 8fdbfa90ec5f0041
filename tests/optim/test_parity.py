"""Step-by-step parity of every jaxnet optimizer and option with optax's of the same name.

Both optimizers see the same gradients and the same parameters at every step (the parameters follow
optax's trajectory), for a few hundred steps inside one ``lax.scan``; their updates at every step
and their moments / step counts at every step must agree to float32 rounding.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from jaxnet import optim

N_STEPS = 300
SHAPES = {"scalar": (), "empty": (0,), "layer": {"kernel": (5, 3), "bias": (7,)}}
MOMENT_FIELDS = ("mu", "nu", "trace", "sum_of_squares", "e_g", "e_x", "count")


def _normal(key, shape, dtype):
    """Standard normal values; complex ones have independent real and imaginary parts."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jax.random.normal(key, shape, dtype)
    return jax.random.normal(key, shape, jnp.float32).astype(dtype)


def make_params(dtype, seed=0):
    key = jax.random.key(seed)
    leaves, treedef = jax.tree.flatten(SHAPES, is_leaf=lambda x: isinstance(x, tuple))
    keys = jax.random.split(key, len(leaves))
    arrays = [_normal(k, s, dtype) for k, s in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, arrays)


def make_grads(params, n_steps, seed=1):
    """Gradients for each step, stacked on a leading axis, with scales from 1e-3 to 10."""
    key = jax.random.key(seed)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, 2 * len(leaves))
    stacked = []
    for i, p in enumerate(leaves):
        noise_dtype = p.dtype if jnp.iscomplexobj(p) else jnp.float32
        noise = _normal(keys[2 * i], (n_steps, *p.shape), noise_dtype)
        scale = 10.0 ** jax.random.uniform(keys[2 * i + 1], (n_steps, 1), minval=-3, maxval=1)
        scale = scale.reshape((n_steps,) + (1,) * p.ndim)
        stacked.append((noise * scale.astype(noise.dtype)).astype(p.dtype))
    return jax.tree.unflatten(treedef, stacked)


def named_fields(state):
    """{field name: [values in depth-first order]} for the moment-like fields of a state."""
    found = {}

    def walk(tree):
        if isinstance(tree, tuple) and hasattr(tree, "_fields"):
            for name in tree._fields:
                value = getattr(tree, name)
                if name in MOMENT_FIELDS:
                    found.setdefault(name, []).append(value)
                walk(value)
        elif isinstance(tree, (tuple, list)):
            for value in tree:
                walk(value)
        elif isinstance(tree, dict):
            for value in tree.values():
                walk(value)

    walk(state)
    return found


def tolerances(dtype):
    if dtype == jnp.bfloat16:
        return {"rtol": 2e-2, "atol": 2e-2}
    return {"rtol": 1e-6, "atol": 1e-7}


def run_both(ours, theirs, params, grads):
    """Scan both optimizers over the same gradients and parameters (optax's trajectory).

    Returns the final states and the updates of every step. (States are compared at the end
    only: stacking them per step doubles the compile time, and any mid-way divergence of a
    state shows in the updates anyway.)
    """

    def step(carry, g):
        params, s_ours, s_theirs = carry
        u_ours, s_ours = ours.update(g, s_ours, params)
        with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
            u_theirs, s_theirs = theirs.update(g, s_theirs, params)
            params = optax.apply_updates(params, u_theirs)
        return (params, s_ours, s_theirs), (u_ours, u_theirs)

    @jax.jit
    def run(params, grads):
        with jax.numpy_dtype_promotion("standard"):
            theirs_state = theirs.init(params)
        return jax.lax.scan(step, (params, ours.init(params), theirs_state), grads)

    (_, s_ours, s_theirs), (u_ours, u_theirs) = run(params, grads)
    return s_ours, s_theirs, u_ours, u_theirs


def assert_parity(*variants, n_steps=N_STEPS):
    """Each variant is ``(label, jaxnet optimizer, optax optimizer, dtype)``."""
    for label, ours, theirs, dtype in variants:
        params = make_params(dtype)
        outputs = run_both(ours, theirs, params, make_grads(params, n_steps))
        try:
            _check_outputs(*outputs, dtype, n_steps)
        except AssertionError as error:
            raise AssertionError(f"variant {label!r}: {error}") from error


def _check_outputs(s_ours, s_theirs, u_ours, u_theirs, dtype, n_steps):
    tol = tolerances(dtype)
    chex.assert_trees_all_equal_dtypes(u_ours, u_theirs)
    chex.assert_trees_all_close(u_ours, u_theirs, **tol)
    leaves = jax.tree.leaves(u_ours)
    assert all(bool(jnp.isfinite(x).all()) for x in leaves)
    f_ours, f_theirs = named_fields(s_ours), named_fields(s_theirs)
    for name, values in f_theirs.items():
        assert name in f_ours, f"jaxnet state has no {name!r}"
        if name == "count":  # jaxnet also counts steps in its learning-rate state
            for value in f_ours[name] + values:
                assert value.dtype == jnp.int32 and int(value) == n_steps
            continue
        assert len(f_ours[name]) == len(values), name
        # masked-out leaves are MaskedNode classes of different libraries: compare the leaves
        ours_leaves, theirs_leaves = jax.tree.leaves(f_ours[name]), jax.tree.leaves(values)
        chex.assert_trees_all_equal_dtypes(ours_leaves, theirs_leaves)
        chex.assert_trees_all_close(ours_leaves, theirs_leaves, **tol)
    extra = set(f_ours) - set(f_theirs) - {"count"}
    assert not extra, f"jaxnet state has extra moments {extra}"


# Each case: (name, jaxnet factory, optax factory). The factories take the learning rate(s).
def _mask_tree():
    return {"scalar": False, "empty": True, "layer": {"kernel": True, "bias": False}}


def _mask_fn(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


# case -> (keyword arguments, flags). Every case runs in float32, with a warm-up + cosine schedule
# as the learning rate if flagged "schedule" (else a constant), and again in bfloat16 with a
# constant rate if flagged "bf16".
S, B = "schedule", "bf16"
CASES = {
    "sgd": ({}, {B}),
    "sgd-momentum": ({"momentum": 0.9}, {S, B}),
    "sgd-nesterov": ({"momentum": 0.9, "nesterov": True}, set()),
    "sgd-momentum-bf16-acc": ({"momentum": 0.5, "accumulator_dtype": jnp.bfloat16}, set()),
    "adagrad": ({}, {B}),
    "adagrad-zero-init": ({"initial_accumulator_value": 0.0, "eps": 1e-3}, {S}),
    "rmsprop": ({}, {B}),
    "rmsprop-centered": ({"centered": True, "decay": 0.8}, {S, B}),
    "rmsprop-momentum": ({"momentum": 0.9}, set()),
    "rmsprop-nesterov": ({"momentum": 0.9, "nesterov": True, "initial_scale": 1.0}, {S}),
    "rmsprop-eps-outside": ({"eps_in_sqrt": False, "eps": 1e-3}, set()),
    "rmsprop-bias-correction": ({"bias_correction": True}, set()),
    "rmsprop-centered-all": (
        {"centered": True, "bias_correction": True, "eps_in_sqrt": False, "momentum": 0.5},
        set(),
    ),
    "adadelta": ({}, {B}),  # optax's default learning_rate=None
    "adadelta-wd-mask": ({"rho": 0.95, "weight_decay": 0.01, "weight_decay_mask": _mask_fn}, {S}),
    "adam": ({}, {B}),
    "adam-betas-eps-root": ({"b1": 0.5, "b2": 0.9, "eps": 1e-4, "eps_root": 1e-8}, set()),
    "adam-nesterov": ({"nesterov": True}, {S}),
    "adam-mu-bf16": ({"mu_dtype": jnp.bfloat16}, set()),
    "adamw": ({}, {B}),
    "adamw-wd-mask-tree": ({"weight_decay": 0.1, "mask": _mask_tree()}, {S}),
    "adamw-wd-mask-fn": ({"weight_decay": 0.1, "mask": _mask_fn}, set()),
    "adamw-nesterov": ({"nesterov": True, "weight_decay": 0.01}, set()),
    "nadam": ({}, {B}),
    "nadam-betas": ({"b1": 0.8, "b2": 0.99, "eps_root": 1e-10}, {S}),
    "adamax": ({}, {B}),
    "adamax-betas": ({"b1": 0.5, "b2": 0.9, "eps": 1e-3}, {S}),
    "lion": ({}, {B}),
    "lion-no-wd": ({"weight_decay": 0.0, "b1": 0.95, "b2": 0.98}, {S}),
    "lion-mask-mu-bf16": ({"mask": _mask_tree(), "mu_dtype": jnp.bfloat16}, set()),
    "lamb": ({}, {B}),
    "lamb-wd-mask": ({"weight_decay": 0.01, "mask": _mask_fn, "eps": 1e-8}, {S}),
}

LEARNING_RATES = {
    "sgd": 0.05,
    "adagrad": 0.1,
    "rmsprop": 0.01,
    "adadelta": 1.0,
    "adam": 0.01,
    "adamw": 0.01,
    "nadam": 0.01,
    "adamax": 0.01,
    "lion": 0.001,
    "lamb": 0.01,
}


def _schedules(peak):
    return (
        optim.warmup_cosine_decay_schedule(0.0, peak, 50, N_STEPS, end_value=peak / 10),
        optax.warmup_cosine_decay_schedule(0.0, peak, 50, N_STEPS, end_value=peak / 10),
    )


def _pair(case, scheduled=False):
    kwargs, _ = CASES[case]
    name = case.split("-")[0]
    ours_kwargs, theirs_kwargs = dict(kwargs), dict(kwargs)
    if scheduled:
        ours_kwargs["learning_rate"], theirs_kwargs["learning_rate"] = _schedules(
            LEARNING_RATES[name]
        )
    elif case != "adadelta":
        ours_kwargs["learning_rate"] = theirs_kwargs["learning_rate"] = LEARNING_RATES[name]
    return getattr(optim, name)(**ours_kwargs), getattr(optax, name)(**theirs_kwargs)


@pytest.mark.parametrize("optimizer", list(LEARNING_RATES))
def test_parity_with_optax(optimizer):
    """Every option of every optimizer, constant and scheduled rates, float32 and bfloat16."""
    variants = []
    for case, (_, flags) in CASES.items():
        if case.split("-")[0] == optimizer:
            label = case + ("-schedule" if S in flags else "")
            variants.append((label, *_pair(case, S in flags), jnp.float32))
            if B in flags:
                variants.append((f"{case}-bfloat16", *_pair(case), jnp.bfloat16))
    assert_parity(*variants)


def test_parity_array_learning_rate_and_schedules_of_weight_decay():
    """A learning rate given as a JAX array behaves like the same float; schedules everywhere."""
    adamw = (
        "adamw-schedules",
        optim.adamw(
            optim.exponential_decay(0.01, 20, 0.9, transition_begin=10, staircase=True),
            weight_decay=optim.linear_schedule(0.0, 0.1, 100),
        ),
        optax.adamw(
            optax.exponential_decay(0.01, 20, 0.9, transition_begin=10, staircase=True),
            weight_decay=optax.linear_schedule(0.0, 0.1, 100),
        ),
        jnp.float32,
    )
    adam = ("adam-array-lr", optim.adam(jnp.asarray(0.01, jnp.float32)), optax.adam(0.01))
    assert_parity((*adam, jnp.float32), adamw)


def test_parity_building_blocks():
    """Chains of the public building blocks against the same chains of optax's."""

    def chains(m):
        piecewise = m.piecewise_constant_schedule(-0.1, {30: 0.5, 100: 0.1})
        return {
            "clips-masked-trace-stddev-schedule": m.chain(
                m.clip(0.5),
                m.clip_by_global_norm(1.0),
                m.masked(m.trace(0.9, nesterov=True), _mask_tree()),
                m.scale_by_stddev(),
                m.scale_by_schedule(piecewise),
            ),
            "tiny-global-norm-trace-no-flip": m.chain(
                m.clip_by_global_norm(1e-3),
                m.trace(0.8),
                m.scale_by_rms(),
                m.scale_by_learning_rate(0.1, flip_sign=False),
            ),
            "rss-adadelta-adamax": m.chain(
                m.scale_by_rss(), m.scale_by_adadelta(), m.scale_by_adamax(), m.scale(-1e-3)
            ),
            "lion-trust-ratio-masked-decay": m.chain(
                m.scale_by_lion(),
                m.scale_by_trust_ratio(0.5, 1.0, 1e-6),
                m.add_decayed_weights(0.1, _mask_fn),
                m.scale(-1e-3),
            ),
        }

    ours, theirs = chains(optim), chains(optax)
    assert_parity(*[(name, ours[name], theirs[name], jnp.float32) for name in ours])


def test_parity_complex_parameters():
    """Complex parameters, for every optimizer optax runs on them: each square is
    |g|^2 = Re(conj(g) g), not g * g, in every moment (and in the global norm)."""
    cases = [
        "sgd-momentum",
        "adagrad",
        "rmsprop",
        "rmsprop-centered-all",
        "adam",
        "adam-nesterov",
        "adamw",
        "nadam",
        "adamax",
        "lamb",
    ]
    variants = [(f"{case}-complex", *_pair(case), jnp.complex64) for case in cases]
    clipped = [
        m.chain(m.clip_by_global_norm(1.0), m.scale_by_stddev(), m.scale(-1e-2))
        for m in (optim, optax)
    ]
    variants.append(("global-norm-stddev-complex", *clipped, jnp.complex64))
    assert_parity(*variants, n_steps=100)
