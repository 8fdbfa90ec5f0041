"""fit's options table: every argument of fit, fit_many, evaluate and predict has one entry, and
the checks, the run record and the docstrings come from it."""

import inspect

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet import losses, optim
from jaxnet.errors import ArgumentTypeError, ConfigError
from jaxnet.train import options
from jaxnet.train.many import fit_many

NOT_OPTIONS = {"steps", "output", "params", "state", "select", "mode"}  # described in place


@pytest.mark.parametrize("fn", [jaxnet.fit, fit_many, jaxnet.evaluate, jaxnet.predict])
def test_every_argument_has_one_entry(fn):
    names = set(inspect.signature(fn).parameters) - NOT_OPTIONS
    assert names <= set(options.OPTIONS), names - set(options.OPTIONS)


def test_fit_documents_every_argument_from_the_table():
    doc = jaxnet.fit.__doc__
    for name in inspect.signature(jaxnet.fit).parameters:
        assert f"\n      {name}: " in doc, name
    assert "{arguments}" not in doc
    assert options.OPTIONS["ema"].doc.split()[0] in doc


def test_an_unknown_option_is_a_key_error_not_a_silent_pass():
    with pytest.raises(KeyError):
        options.check("fit", no_such_option=1)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (dict(epochs=2.5), ArgumentTypeError, "fit: epochs must be an integer, got 2.5"),
        (dict(accumulate=0), ConfigError, "fit: accumulate must be"),
        (dict(ema=1.0), ConfigError, r"fit: ema must be in \[0, 1\), got 1.0"),
        (dict(resume="yes"), ConfigError, "resume must be True, False or 'force'"),
        (dict(monitor=3), ArgumentTypeError, "monitor must be a probe"),
    ],
)
def test_checks_name_the_function_and_the_argument(arguments, error, message):
    with pytest.raises(error, match=message):
        options.check("fit", **arguments)


def test_the_run_record_holds_exactly_the_options_that_define_the_run():
    model = jaxnet.serial(jaxnet.layers.Dense(2))
    ts = jaxnet.train.step.create_train_state(model, optim.sgd(0.1), (3,), jax.random.key(0))
    x, y = np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)
    arguments = dict(model=model, loss_fn=losses.mse, optimizer=optim.sgd(0.1), x=x, y=y,
                     epochs=3, batch_size=2, verbose=0, callbacks=(), ema=0.99, accumulate=2,
                     steps_per_execution=1, keep=3)  # fmt: skip
    record = options.run_record(arguments, ts)
    recorded = {name for name, o in options.OPTIONS.items() if o.record is not None}
    assert set(record) == recorded & set(arguments)
    assert {"epochs", "verbose", "callbacks", "steps_per_execution", "keep"}.isdisjoint(record)
    assert record["ema"] == 0.99 and record["accumulate"] == 2 and record["batch_size"] == 2
    assert record["loss_fn"] == "jaxnet.losses.mean_squared_error"
    assert record["x"].startswith("float32[4, 3] sha256:")
