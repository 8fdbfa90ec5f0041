"""optax's own alias tests, run on jaxnet's optimizers.

optax ships its test suite in its wheel (``optax/_src/alias_test.py``). Its common tests build each
optimizer through the module-level name ``alias`` (``getattr(alias, opt_name)``, ``alias.sgd``).
Here that name is swapped for jaxnet's optimizers and optax's test functions are called, unchanged,
with optax's own parameters, restricted to the optimizers jaxnet has (all of jaxnet's, as optax
configures them): the same assertions now check jaxnet.

One test is re-written rather than called: ``test_optimization`` runs its 10,000 steps as 10,000
Python calls of a jitted step (~0.4 s per case, ~20 s in all); ``test_optimization`` below runs the
same objectives, start points, targets, step count and tolerances in one ``lax.fori_loop``.

To keep this module to seconds, the compile-heavy dtype tests run on a subset of optax's dtypes
(noted at each test); every optax case passes on jaxnet's optimizers with all dtypes (checked when
this module was written). No jaxnet optimizer deviates from an optax assertion here; the one
deliberate difference is *stricter*: where optax skips complex parameters for Lion and AdaDelta
("does not support complex parameters"), jaxnet refuses them with an ``OptimizerError``, which
``test_optimization`` checks.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import optax
import pytest

from jaxnet import optim

optax_tests = pytest.importorskip("optax._src.alias_test")  # needs absl-py, scipy, scikit-learn

# optax's cases for the optimizers jaxnet has: 12 of its ~35 (sgd with momentum, adagrad, rmsprop
# with and without momentum, adadelta with and without a learning rate, adam, adamax, adamw, lamb,
# lion, nadam), with optax's keyword arguments.
JAXNET = [name for name in optim.NAMES if name not in ("momentum", "nesterov")]  # sgd's presets
CASES = [c for c in optax_tests._OPTIMIZERS_UNDER_TEST if c["opt_name"] in JAXNET]
IDS = [f"{c['opt_name']}-{'-'.join(c['opt_kwargs']) or 'defaults'}" for c in CASES]
# the optimizers optax's tests skip on complex numbers ("does not support complex parameters")
NOT_COMPLEX = ("lion", "adadelta")

JAXNET_ALIASES = types.SimpleNamespace(**{name: getattr(optim, name) for name in JAXNET})


@pytest.fixture
def optax_test(monkeypatch):
    """Call optax's test method ``name`` (unchanged) with jaxnet's optimizers substituted."""
    monkeypatch.setattr(optax_tests, "alias", JAXNET_ALIASES)
    test_case = optax_tests.AliasTest()

    def call(name, **parameters):
        # absl's parameterized methods are named test_x0, test_x1, ...; each wraps the original
        original = getattr(optax_tests.AliasTest, f"{name}0").__wrapped__
        return original(test_case, **parameters)

    return call


def test_cases_cover_every_jaxnet_optimizer():
    assert len(CASES) == 12
    assert {c["opt_name"] for c in CASES} == set(JAXNET)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_optimization(case):
    """optax's ``test_optimization``: parabola and Rosenbrock, float32 and complex64, 10,000 steps
    to within 3e-2 of the minimum; ``optax.tree.map_params`` works on the state; the second
    jitted step does not recompile."""
    name, kwargs = case["opt_name"], case["opt_kwargs"]
    opt = getattr(optim, name)(**kwargs)
    dtypes = (jnp.float32,) if name in NOT_COMPLEX else (jnp.float32, jnp.complex64)
    problems = [
        target(dtype)
        for target in (optax_tests._setup_parabola, optax_tests._setup_rosenbrock)
        for dtype in dtypes
    ]
    if name in NOT_COMPLEX:  # deliberate difference: an error, where optax skips the case
        with pytest.raises(optim.OptimizerError, match="complex"):
            opt.init(optax_tests._setup_parabola(jnp.complex64)[0])

    def step(params, state, objective):
        updates = jax.grad(objective)(params)
        updates = jax.tree.map(lambda x: x.conj(), updates)  # as optax's test, for complex
        updates, state = opt.update(updates, state, params)
        return optax.apply_updates(params, updates), state

    @jax.jit
    def solve(starts):
        found = []
        for start, (_, _, objective) in zip(starts, problems, strict=True):
            state = optax.tree.map_params(opt, lambda v: v, opt.init(start))

            def body(_, carry, objective=objective):
                return step(*carry, objective)

            found.append(jax.lax.fori_loop(0, 10_000, body, (start, state))[0])
        return found

    results = solve([start for start, _, _ in problems])
    if name == "adadelta" and kwargs.get("learning_rate") is None:
        # optax's own skip: "needs a non-None learning rate for numerically stable optimization"
        assert all(bool(jnp.all(jnp.isfinite(r))) for r in results)
    else:
        for found, (_, target, _) in zip(results, problems, strict=True):
            optax_tests.test_utils.assert_trees_all_close(found, target, rtol=3e-2, atol=3e-2)

    start, _, objective = problems[0]
    jitted = jax.jit(lambda p, s: step(p, s, objective))
    params, state = jitted(start, opt.init(start))
    with optax_tests.test_utils.log_compilations() as compilation_logs:
        jitted(params, state)
    assert not compilation_logs, "the optimizer recompiles on the second call to update"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_optimizers_accept_extra_args(case, optax_test):
    optax_test("test_optimizers_accept_extra_args", **case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_optimizers_can_be_wrapped_in_inject_hyperparams(case, optax_test):
    optax_test("test_optimizers_can_be_wrapped_in_inject_hyperparams", **case)


@pytest.mark.parametrize("opt_name", ["sgd_mom", "adam", "adamw"])
@pytest.mark.parametrize("state_dtype", ["bfloat16", "float32", "complex64", None])
@pytest.mark.parametrize("params_dtype", ["bfloat16", "float32", "complex64", None])
def test_explicit_dtype(params_dtype, state_dtype, opt_name, optax_test):
    optax_test(
        "test_explicit_dtype",
        params_dtype=params_dtype,
        state_dtype=state_dtype,
        opt_name=opt_name,
    )


# optax also runs float32 here: bfloat16 is the dtype that a careless float32 constant promotes
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_preserve_dtype(case, optax_test):
    optax_test("test_preserve_dtype", dtype="bfloat16", **case)


# optax runs float16, bfloat16, float32, float64, complex64 and complex128 (all pass); here the one
# that exercises most at once: x64 and complex numbers. (bfloat16 and float32 states are checked
# without compiling in test_compile_and_vmap.py.)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_shape_dtype_shard_stability(case, optax_test):
    optax_test("test_state_shape_dtype_shard_stability", dtype=jnp.complex128, **case)


# optax also runs float32; bfloat16 is the case of optax issue 377 (MultiSteps and dtypes)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_accumulation(case, optax_test):
    with jax.numpy_dtype_promotion("standard"):  # optax's MultiSteps is not strict-clean
        optax_test("test_gradient_accumulation", dtype="bfloat16", **case)
