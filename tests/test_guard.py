"""The non-finite guard: whatever breaks, ``fit`` returns a finite state equal to the last finite
epoch's (compared with a run that stopped there), and the warning says where and what to do."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import losses, optim
from jaxnet.core import serial
from jaxnet.layers import Dense
from jaxnet.train.callbacks import Callback
from jaxnet.train.fit import fit
from jaxnet.train.guard import became_non_finite, went_non_finite

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 3)).astype(np.float32)
Y = RNG.normal(size=(32, 1)).astype(np.float32)
MODEL = serial(Dense(8), jnp.tanh, Dense(1))


def run(optimizer, x=X, y=Y, epochs=3, **kwargs):
    """``(train_state, history, [warning messages])`` of a quiet ``fit``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ts, history = fit(MODEL, losses.mse, optimizer, x, y, epochs=epochs, verbose=0, **kwargs)
    return ts, history, [str(w.message) for w in caught if w.category is RuntimeWarning]


def all_finite(tree) -> bool:
    leaves = [a for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.inexact)]
    return all(bool(jnp.all(jnp.isfinite(a))) for a in leaves)


def test_update_that_overflows_in_the_first_step_returns_the_initial_state():
    # Full-batch SGD at 1e38: the first step's loss (computed before the update) is finite, the
    # update is not. The epoch's logs look fine; the guard must still refuse the epoch.
    ts, history, messages = run(optim.sgd(1e38), y=100 * Y, batch_size=32)
    initial, _, _ = run(optim.sgd(1e38), epochs=0, batch_size=32)
    assert all_finite(ts) and history.epochs == 0
    chex.assert_trees_all_equal(ts, initial)
    assert len(messages) == 1, messages
    assert "epoch 1 made the train state non-finite (params/dense_0/b" in messages[0]
    assert "the update made 4 of 4 parameter arrays non-finite" in messages[0]
    assert "kept the initial parameters" in messages[0]


class RateAfter(Callback):
    """Set the learning rate to ``rate`` after epoch ``epoch`` (0-based)."""

    def __init__(self, epoch, rate):
        self.epoch, self.rate = epoch, rate

    def on_epoch_end(self, epoch, logs, loop):
        if epoch == self.epoch:
            opt_state = optim.set_hyperparameter(loop.train_state.opt_state, "learning_rate", 1e38)
            loop.train_state = loop.train_state._replace(opt_state=opt_state)


def test_overflow_in_a_later_epoch_returns_that_epochs_starting_state():
    ts, history, messages = run(optim.sgd(0.1), y=100 * Y, epochs=4, batch_size=32,
                                callbacks=[RateAfter(1, 1e38)])  # fmt: skip
    reference, _, _ = run(optim.sgd(0.1), y=100 * Y, epochs=2, batch_size=32,
                          callbacks=[RateAfter(1, 1e38)])  # fmt: skip
    assert all_finite(ts) and history.epochs == 2
    chex.assert_trees_all_equal(ts, reference)  # the state after epoch 2, rate 1e38 included
    assert "epoch 3 made the train state non-finite" in messages[0]
    assert "kept the parameters from the end of epoch 2" in messages[0]


def test_only_the_loss_overflowing_is_said_and_names_the_output_layer():
    # Targets near 1e20: squared errors overflow float32, gradients (2 * error) do not.
    ts, history, messages = run(optim.sgd(1e-3), y=Y * 1e20, batch_size=8)
    assert history.epochs == 0 and all_finite(ts)
    assert len(messages) == 1, messages
    assert "the loss was non-finite" in messages[0] and "only the loss overflowed" in messages[0]
    assert "the model's output layer is dense_2" in messages[0]
    assert "Standardise the targets" in messages[0]


def test_optimizer_state_overflowing_under_finite_loss_and_params_is_caught():
    # Adam's second moment overflows (the output bias' gradient 2 * 1.6e19, squared) while the
    # loss (2.6e38) and the parameters (Adam's step is ~lr) stay finite: training would go on
    # with a frozen model.
    x = np.ones((1, 3), np.float32)
    y = np.full((1, 1), 1.6e19, np.float32)
    ts, history, messages = run(optim.adam(1e-3), x=x, y=y, batch_size=1)
    assert history.epochs == 0 and all_finite(ts)
    assert len(messages) == 1 and "made the train state non-finite (opt_state/0/nu" in messages[0]


def test_became_non_finite_ignores_entries_that_start_non_finite():
    before = {"a": jnp.ones(2), "best": jnp.inf, "step": jnp.int32(1), "b": jnp.ones(3),
              "c": jnp.array([jnp.inf, 1.0])}  # fmt: skip
    after = {
        "a": jnp.array([1.0, jnp.nan]),
        "best": jnp.inf,
        "step": jnp.int32(2),
        "b": before["b"],
        "c": jnp.array([jnp.inf, 2.0]),
    }
    assert became_non_finite(before, after) == ["a"]
    assert became_non_finite(before, before) == []
    # an entry of a leaf that already held a non-finite one
    assert became_non_finite(before, {**after, "c": jnp.array([1.0, -jnp.inf])}) == ["a", "c"]


def test_went_non_finite_is_one_flag_for_every_entry_of_every_leaf():
    before = {"w": jnp.ones((2, 3)), "best": jnp.array([jnp.inf, 0.0]), "step": jnp.int32(0),
              "h": jnp.ones(4, jnp.bfloat16), "z": jnp.ones(2, jnp.complex64)}  # fmt: skip
    for leaf, index, value in [("w", (1, 2), jnp.nan), ("best", 1, jnp.inf), ("h", 3, -jnp.inf),
                               ("best", 0, jnp.nan), ("z", 1, complex(0, jnp.inf))]:  # fmt: skip
        after = {**before, leaf: before[leaf].at[index].set(value)}
        expected = bool(np.isfinite(np.asarray(before[leaf], np.complex64)[index]))
        assert bool(jax.jit(went_non_finite)(before, after)) is expected, (leaf, index)
        assert became_non_finite(before, after, went_non_finite(before, after)) == (
            [leaf] if expected else []
        )
    assert not went_non_finite(before, before)
    big = {"w": jnp.float32(3e38), "h": jnp.float16(6e4)}  # the largest finite values stay finite
    assert not went_non_finite(big, big)
    assert went_non_finite(big, {**big, "h": jnp.float16(jnp.inf)})
    assert not went_non_finite({"step": jnp.int32(0)}, {"step": jnp.int32(1)})


def test_a_finite_run_is_untouched():
    ts, history, messages = run(optim.sgd(0.05), batch_size=8)
    assert messages == [] and history.epochs == 3 and all_finite(ts)


def test_a_state_leaf_that_starts_infinite_does_not_stop_training():
    # e.g. a plateau rule's "best loss so far" starts at inf: the leaf is not finite at any epoch's
    # start, so it is left alone, and training goes on equal to the same run without that leaf.
    def remember(updates, state, params=None):
        return updates, state

    with_inf = optim.chain(
        optim.sgd(0.05), optim.GradientTransformation(lambda p: {"best": jnp.inf}, remember)
    )
    ts, history, messages = run(with_inf, batch_size=8)
    plain, plain_history, _ = run(optim.chain(optim.sgd(0.05)), batch_size=8)
    assert messages == [] and history.epochs == 3
    assert float(ts.opt_state[1]["best"]) == np.inf
    assert history["loss"] == plain_history["loss"]
    chex.assert_trees_all_equal(ts.params, plain.params)
