"""Bad arguments fail at construction; mismatched gradient trees fail at update (trace time)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxnet import optim
from jaxnet.errors import ConfigError, JaxnetError, check_range
from jaxnet.optim import accumulation, alias, schedules, transforms

BAD_ARGUMENTS = [
    # (optimizer, keyword arguments, error path, argument (as the transform names it), interval)
    ("sgd", {"learning_rate": -0.1}, "sgd/scale_by_learning_rate", "learning_rate", "[0, inf)"),
    ("sgd", {"learning_rate": 0.1, "momentum": 1.0}, "sgd/trace", "momentum", "[0, 1)"),
    ("adagrad", {"learning_rate": 0.1, "eps": -1e-7}, "adagrad/scale_by_rss", "eps", "[0, inf)"),
    (
        "adagrad",
        {"learning_rate": 0.1, "initial_accumulator_value": -1},
        "adagrad/scale_by_rss",
        "initial_accumulator_value",
        "[0, inf)",
    ),
    ("rmsprop", {"learning_rate": 0.1, "decay": 1.5}, "rmsprop/scale_by_rms", "decay", "[0, 1)"),
    (
        "rmsprop",
        {"learning_rate": 0.1, "decay": 1.5, "centered": True},
        "rmsprop/scale_by_stddev",
        "decay",
        "[0, 1)",
    ),
    ("rmsprop", {"learning_rate": 0.1, "momentum": -0.5}, "rmsprop/trace", "momentum", "[0, 1)"),
    ("adadelta", {"rho": 1.0}, "adadelta/scale_by_adadelta", "rho", "[0, 1)"),
    (
        "adadelta",
        {"weight_decay": -1.0},
        "adadelta/add_decayed_weights",
        "weight_decay",
        "[0, inf)",
    ),
    ("adam", {"learning_rate": -1e-3}, "adam/scale_by_learning_rate", "learning_rate", "[0, inf)"),
    ("adam", {"learning_rate": 1e-3, "b1": 1.5}, "adam/scale_by_adam", "b1", "[0, 1)"),
    ("adam", {"learning_rate": 1e-3, "b2": -0.1}, "adam/scale_by_adam", "b2", "[0, 1)"),
    ("adam", {"learning_rate": 1e-3, "eps": -1e-8}, "adam/scale_by_adam", "eps", "[0, inf)"),
    (
        "adamw",
        {"learning_rate": 1e-3, "weight_decay": -1e-4},
        "adamw/add_decayed_weights",
        "weight_decay",
        "[0, inf)",
    ),
    ("nadam", {"learning_rate": 1e-3, "b2": 1.0}, "nadam/scale_by_adam", "b2", "[0, 1)"),
    ("adamax", {"learning_rate": 1e-3, "b1": 2.0}, "adamax/scale_by_adamax", "b1", "[0, 1)"),
    ("lion", {"learning_rate": 1e-3, "b1": 1.1}, "lion/scale_by_lion", "b1", "[0, 1]"),
    ("lion", {"learning_rate": 1e-3, "b2": 1.0}, "lion/scale_by_lion", "b2", "[0, 1)"),
    (
        "lamb",
        {"learning_rate": 1e-3, "eps_root": -1.0},
        "lamb/scale_by_adam",
        "eps_root",
        "[0, inf)",
    ),
]


@pytest.mark.parametrize(("name", "kwargs", "path", "argument", "interval"), BAD_ARGUMENTS)
def test_bad_argument_is_a_clear_error(name, kwargs, path, argument, interval):
    with pytest.raises(optim.OptimizerError) as info:
        getattr(optim, name)(**kwargs)
    bad = next(v for k, v in kwargs.items() if k != "learning_rate" or v < 0)
    assert isinstance(info.value, ValueError) and isinstance(info.value, JaxnetError)
    assert str(info.value) == f"{path}: {argument} must be in {interval}, got {bad!r}"
    assert info.value.path == tuple(path.split("/"))


def _count_checks(monkeypatch):
    """Record (owner, argument) of every range check made by the optimizer modules."""
    seen = []

    def counting(owner, name, value, *args, **kwargs):
        seen.append((owner, name))
        return check_range(owner, name, value, *args, **kwargs)

    for module in (transforms, alias, accumulation, schedules):
        if hasattr(module, "check_range"):
            monkeypatch.setattr(module, "check_range", counting)
    return seen


@pytest.mark.parametrize("name", optim.NAMES)
def test_each_argument_is_checked_once_by_the_transform_that_uses_it(name, monkeypatch):
    """Aliases only compose (as in optax): no alias re-validates what its transforms check."""
    seen = _count_checks(monkeypatch)
    optim.get(name, 0.1)
    assert seen, "nothing was checked"
    assert len(seen) == len(set(seen)), f"checked more than once: {seen}"
    assert all(owner != name for owner, _ in seen), seen  # the alias itself checks nothing


def test_bad_array_learning_rate_and_transform_names():
    with pytest.raises(optim.OptimizerError, match=r"^adam/scale_by_learning_rate: .*\[-0.1\]"):
        optim.adam(jnp.array([0.1, -0.1]))
    with pytest.raises(optim.OptimizerError, match="^scale_by_adam: b1 must be in"):
        optim.scale_by_adam(b1=-0.5)
    with pytest.raises(optim.OptimizerError, match="^trace: decay"):
        optim.trace(decay=1.0)
    with pytest.raises(optim.OptimizerError, match="^clip_by_global_norm: max_norm"):
        optim.clip_by_global_norm(-1.0)
    with pytest.raises(optim.OptimizerError, match="^ema: decay"):
        optim.ema(1.0)
    with pytest.raises(optim.OptimizerError, match="^multi_steps: every_k_schedule"):
        optim.multi_steps(optim.sgd(0.1), 0)
    for bad in (float("nan"), "0.1"):
        with pytest.raises(optim.OptimizerError, match="learning_rate must be"):
            optim.sgd(bad)


def test_edge_values_are_accepted():
    optim.sgd(0.0, momentum=0.0)
    optim.adam(1e-3, b1=0.0, b2=0.0, eps=0.0)
    optim.lion(1e-3, b1=1.0)
    optim.adam(optim.linear_schedule(0.0, 1e-3, 10))  # schedules are not range-checked
    jax.jit(lambda lr: optim.sgd(lr).init(jnp.zeros(2)))(0.1)  # nor traced values


def test_gradient_tree_mismatch_names_both_structures():
    opt = optim.adam(1e-3)
    state = opt.init({"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)})
    wrong = {"w": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}
    with pytest.raises(optim.OptimizerError) as info:
        jax.jit(opt.update)(wrong, state)  # fails while tracing, before any compile
    message = str(info.value)
    assert message.startswith("adam/scale_by_adam: the gradient tree does not match"), message
    assert "'bias'" in message and "'b'" in message, message


def test_gradient_shape_mismatch_and_missing_params():
    opt = optim.sgd(0.1, momentum=0.9)
    state = opt.init({"w": jnp.zeros((2, 3))})
    with pytest.raises(
        optim.OptimizerError, match=r"(?s)^sgd/trace: gradient leaf shapes.*\(3, 2\)"
    ):
        opt.update({"w": jnp.zeros((3, 2))}, state)
    lamb = optim.lamb(1e-3)
    with pytest.raises(
        optim.OptimizerError, match="^lamb/add_decayed_weights: .*needs the current parameters"
    ):
        lamb.update({"w": jnp.zeros((2, 3))}, lamb.init({"w": jnp.zeros((2, 3))}))
    with pytest.raises(optim.OptimizerError, match="^lookup: no field 'momentum'"):
        optim.get_hyperparameter(state, "momentum")
    with pytest.raises(optim.OptimizerError, match="^sgd/chain: expected a state tuple of 2"):
        opt.update({"w": jnp.zeros((2, 3))}, state[0])


@pytest.mark.parametrize(
    ("name", "transform"), [("lion", "scale_by_lion"), ("adadelta", "scale_by_adadelta")]
)
def test_optimizers_optax_does_not_define_on_complex_refuse_complex_params(name, transform):
    params = {"w": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(optim.OptimizerError, match=rf"^{name}/{transform}: complex .*\['z'\]"):
        optim.get(name, 0.1).init(params)
    optim.get(name, 0.1).init({"w": jnp.ones(2)})  # real ones are fine
    with pytest.raises(optim.OptimizerError, match=r"^clip: complex"):
        optim.clip(1.0).update(params, optim.EmptyState())


def test_get_unknown_name_or_argument_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^optim.get: unknown optimizer 'adamm'.*'lamb'\]"):
        optim.get("adamm", 0.1)
    with pytest.raises(ConfigError, match=r"^optim.get: adam takes no argument 'momentum'; .*'b1'"):
        optim.get("adam", 0.1, momentum=0.9)
