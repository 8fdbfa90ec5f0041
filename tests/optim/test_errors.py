"""Bad arguments fail at construction; mismatched gradient trees fail at update (trace time)."""

from __future__ import annotations

import doctest
import importlib

import jax
import jax.numpy as jnp
import pytest

from jaxnet import optim

BAD_ARGUMENTS = [
    # (optimizer, keyword arguments, argument named in the message, expected range in message)
    ("sgd", {"learning_rate": -0.1}, "learning_rate", ">= 0.0"),
    ("sgd", {"learning_rate": 0.1, "momentum": 1.0}, "momentum", "[0.0, 1.0)"),
    ("adagrad", {"learning_rate": 0.1, "eps": -1e-7}, "eps", ">= 0.0"),
    (
        "adagrad",
        {"learning_rate": 0.1, "initial_accumulator_value": -1},
        "initial_accumulator_value",
        ">= 0.0",
    ),
    ("rmsprop", {"learning_rate": 0.1, "decay": 1.5}, "decay", "[0.0, 1.0)"),
    ("rmsprop", {"learning_rate": 0.1, "momentum": -0.5}, "momentum", "[0.0, 1.0)"),
    ("adadelta", {"rho": 1.0}, "rho", "[0.0, 1.0)"),
    ("adam", {"learning_rate": -1e-3}, "learning_rate", ">= 0.0"),
    ("adam", {"learning_rate": 1e-3, "b1": 1.0}, "b1", "[0.0, 1.0)"),
    ("adam", {"learning_rate": 1e-3, "b2": -0.1}, "b2", "[0.0, 1.0)"),
    ("adam", {"learning_rate": 1e-3, "eps": -1e-8}, "eps", ">= 0.0"),
    ("adamw", {"learning_rate": 1e-3, "weight_decay": -1e-4}, "weight_decay", ">= 0.0"),
    ("nadam", {"learning_rate": 1e-3, "b2": 1.0}, "b2", "[0.0, 1.0)"),
    ("adamax", {"learning_rate": 1e-3, "b1": 2.0}, "b1", "[0.0, 1.0)"),
    ("lion", {"learning_rate": 1e-3, "b1": 1.1}, "b1", "[0.0, 1.0]"),
    ("lion", {"learning_rate": 1e-3, "b2": 1.0}, "b2", "[0.0, 1.0)"),
    ("lamb", {"learning_rate": 1e-3, "eps_root": -1.0}, "eps_root", ">= 0.0"),
]


@pytest.mark.parametrize(("name", "kwargs", "argument", "interval"), BAD_ARGUMENTS)
def test_bad_argument_is_a_clear_error(name, kwargs, argument, interval):
    with pytest.raises(optim.OptimizerError) as info:
        getattr(optim, name)(**kwargs)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"{name}:"), message
    assert f"`{argument}`" in message and interval in message, message
    assert str(kwargs[argument]) in message, message  # the received value


def test_bad_array_learning_rate_and_transform_names():
    with pytest.raises(optim.OptimizerError, match=r"adam: `learning_rate`.*\[-0.1\]"):
        optim.adam(jnp.array([0.1, -0.1]))
    with pytest.raises(optim.OptimizerError, match="scale_by_adam: `b1`"):
        optim.scale_by_adam(b1=-0.5)
    with pytest.raises(optim.OptimizerError, match="trace: `decay`"):
        optim.trace(decay=1.0)
    with pytest.raises(optim.OptimizerError, match="clip_by_global_norm"):
        optim.clip_by_global_norm(-1.0)


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
    assert "scale_by_adam" in message and "'bias'" in message and "'b'" in message, message


def test_gradient_shape_mismatch_and_missing_params():
    opt = optim.sgd(0.1, momentum=0.9)
    state = opt.init({"w": jnp.zeros((2, 3))})
    with pytest.raises(optim.OptimizerError, match=r"(?s)trace: gradient leaf shapes.*\(3, 2\)"):
        opt.update({"w": jnp.zeros((3, 2))}, state)
    lamb = optim.lamb(1e-3)
    with pytest.raises(optim.OptimizerError, match="needs the current parameters"):
        lamb.update({"w": jnp.zeros((2, 3))}, lamb.init({"w": jnp.zeros((2, 3))}))
    with pytest.raises(optim.OptimizerError, match="no field 'momentum'"):
        optim.get_hyperparameter(state, "momentum")
    with pytest.raises(optim.OptimizerError, match="chain"):
        opt.update({"w": jnp.zeros((2, 3))}, state[0])


@pytest.mark.parametrize("module", ["base", "transforms", "alias", "schedules"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(f"jaxnet.optim.{module}"))
    assert result.attempted > 0 and result.failed == 0
