import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.core import apply_with_outputs, init_model, serial
from jaxnet.errors import ConfigError, ShapeError
from jaxnet.layers.dense import Dense
from jaxnet.layers.dropout import (
    AlphaDropout,
    Dropout,
    GaussianDropout,
    GaussianNoise,
    RandomShift,
)
from jaxnet.train.step import TrainState, step_key

SHAPE = (500, 400)  # 200k units: sampling error of a fraction ~ 0.001


def _train(layer, x, key):
    return layer.apply({}, {}, x, key=key, train=True)[0]


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5, 0.8])
def test_dropout_zeros_about_rate_of_units_and_keeps_the_mean(rate, key):
    x = jnp.ones(SHAPE)
    y = np.asarray(_train(Dropout(rate), x, key))
    assert abs((y == 0).mean() - rate) < 0.005
    # Inverted dropout: survivors are scaled by 1/(1-rate), so the expected activation is kept.
    np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02


def test_dropout_is_identity_at_inference_and_needs_no_key(key):
    x = jax.random.normal(key, (8, 16))
    for layer in (Dropout(0.5), GaussianDropout(0.3), AlphaDropout(0.2), GaussianNoise(1.0)):
        y, state = layer.apply({}, {}, x, train=False)
        np.testing.assert_array_equal(y, x)
        assert state == {}


def test_same_key_same_mask_other_key_other_mask(key):
    x = jnp.ones((64, 64))
    layer = Dropout(0.5)
    np.testing.assert_array_equal(_train(layer, x, key), _train(layer, x, key))
    assert not np.array_equal(_train(layer, x, key), _train(layer, x, jax.random.fold_in(key, 1)))


def test_two_layers_in_serial_never_share_a_mask(key):
    # With a shared mask the second dropout would zero nothing new (zeros stay at 50%); with
    # independent masks a unit survives both with probability 1/4, so 75% end up zero.
    model = serial(Dropout(0.5), Dropout(0.5))
    x = jnp.ones(SHAPE)
    _, _, outputs = apply_with_outputs(
        model,
        {"dropout_0": {}, "dropout_1": {}},
        {"dropout_0": {}, "dropout_1": {}},
        x,
        key=key,
        train=True,
    )
    first, second = np.asarray(outputs["dropout_0"]), np.asarray(outputs["dropout_1"])
    assert abs((first == 0).mean() - 0.5) < 0.005
    assert abs((second == 0).mean() - 0.75) < 0.005


def test_masks_differ_across_training_steps(key):
    x = jnp.ones((64, 64))
    layer = Dropout(0.5)
    masks = []
    for step in range(3):
        ts = TrainState({}, {}, (), jnp.asarray(step, jnp.int32), key)
        masks.append(np.asarray(_train(layer, x, step_key(ts))) != 0)
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])


@pytest.mark.parametrize("make", [Dropout, GaussianDropout, AlphaDropout])
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rate_outside_unit_interval_is_a_config_error(make, rate):
    with pytest.raises(ConfigError, match="rate"):
        make(rate)


def test_gaussian_noise_stddev_must_be_non_negative():
    with pytest.raises(ConfigError, match="stddev"):
        GaussianNoise(-1.0)


def test_missing_key_in_training_names_the_layer(key):
    model = serial(Dense(4), Dropout(0.5))
    params, state = init_model(model, key, (3,))
    with pytest.raises(ConfigError) as info:
        model.apply(params, state, jnp.ones((2, 3)), train=True)
    assert info.value.path == ("serial", "dropout_1") and "key" in str(info.value)


def test_gaussian_dropout_has_dropouts_mean_and_variance(key):
    rate = 0.3
    y = np.asarray(_train(GaussianDropout(rate), jnp.ones(SHAPE), key))
    assert abs(y.mean() - 1.0) < 0.01
    assert abs(y.std() - np.sqrt(rate / (1 - rate))) < 0.01


def test_gaussian_noise_adds_zero_mean_noise(key):
    x = jnp.full(SHAPE, 3.0)
    noise = np.asarray(_train(GaussianNoise(0.5), x, key)) - 3.0
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.5) < 0.01


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2])
def test_alpha_dropout_keeps_selu_normalised_mean_and_variance(rate, key):
    # SELU of standard-normal pre-activations has mean 0 and variance 1 (its fixed point).
    x = jax.nn.selu(jax.random.normal(key, SHAPE))
    assert abs(float(x.mean())) < 0.01 and abs(float(x.var()) - 1.0) < 0.02
    y = np.asarray(_train(AlphaDropout(rate), x, jax.random.fold_in(key, 7)))
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1.0) < 0.02
    # Dropped units all take one value, a * (-scale * alpha) + b, in about `rate` of the units.
    saturation = -1.0507009873554805 * 1.6732632423543772
    a = ((1 - rate) * (1 + rate * saturation**2)) ** -0.5
    dropped_value = a * saturation - a * saturation * rate
    assert abs(np.isclose(y, dropped_value, rtol=0, atol=1e-6).mean() - rate) < 0.005


def test_plain_dropout_would_break_selu_normalisation(key):
    # Why AlphaDropout exists: inverted dropout inflates the variance of SELU activations.
    x = jax.nn.selu(jax.random.normal(key, SHAPE))
    y = np.asarray(_train(Dropout(0.2), x, jax.random.fold_in(key, 7)))
    assert y.var() > 1.2


def _shifted(image, dy, dx):
    """``image`` (h, w, c) moved down by ``dy`` and right by ``dx``, zeros entering (NumPy)."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_random_shift_moves_each_image_by_a_uniform_shift_within_range(key):
    x = np.random.default_rng(0).normal(size=(450, 6, 5, 2)).astype(np.float32)
    y = np.asarray(_train(RandomShift(1), jnp.asarray(x), key))
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    found = []
    for image, out in zip(x, y, strict=True):
        matches = [s for s in shifts if np.array_equal(out, _shifted(image, *s))]
        assert len(matches) == 1  # a random image matches exactly one of the 9 shifts
        found.append(matches[0])
    counts = np.array([found.count(s) for s in shifts])
    assert counts.min() > 25 and counts.max() < 75  # ~50 each of 9 (uniform)
    np.testing.assert_array_equal(_train(RandomShift(1), jnp.asarray(x), key), y)  # same key


def test_random_shift_is_identity_at_inference_and_checks_its_input(key):
    x = jax.random.normal(key, (4, 8, 8, 1))
    np.testing.assert_array_equal(RandomShift(2).apply({}, {}, x)[0], x)
    np.testing.assert_array_equal(_train(RandomShift(0), x, key), x)
    with pytest.raises(
        ShapeError, match=r"random_shift.*\(batch, \*spatial, channels\).*\(4, 64\)"
    ):
        _train(RandomShift(1), x.reshape(4, 64), key)
    with pytest.raises(ConfigError, match="max_shift"):
        RandomShift(-1)
