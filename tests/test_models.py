"""Autoencoder builders and GAN steps: shapes, closed forms, and that training moves things."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnet import losses, optim
from jaxnet.core import serial
from jaxnet.layers.dense import Dense
from jaxnet.models import (
    GANState,
    conv_autoencoder,
    dense_autoencoder,
    discriminator_loss,
    generator_loss,
    init_gan,
    make_gan_step,
    make_gan_train,
    reconstruction_error,
    sample,
)
from jaxnet.train.fit import fit


def low_rank_data(n=256, dim=12, rank=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim))).astype(np.float32)


def test_dense_autoencoder_parts_and_shapes(key):
    ae = dense_autoencoder(12, code_size=3, hidden=(8,))
    out_shape, params, state = jax.jit(ae.model.init, static_argnums=1)(key, (12,))
    assert out_shape == (12,) and set(params) == {"encoder_0", "decoder_1"}
    x = jnp.asarray(low_rank_data(n=5))
    code, _ = ae.encoder.apply(params["encoder_0"], state["encoder_0"], x)
    rebuilt, _ = ae.decoder.apply(params["decoder_1"], state["decoder_1"], code)
    assert code.shape == (5, 3)
    chex.assert_trees_all_close(ae.model.apply(params, state, x)[0], rebuilt, atol=1e-6)
    expected = np.mean((np.asarray(rebuilt) - np.asarray(x)) ** 2, axis=1)
    chex.assert_trees_all_close(
        reconstruction_error(ae.model, params, state, x), expected, atol=1e-6
    )


def test_conv_autoencoder_shapes(key):
    ae = conv_autoencoder((8, 8, 1), filters=(4, 2), output_activation="sigmoid")
    shapes = {}

    def init(key):  # traced only: no weights are drawn
        shapes["out"], params, state = ae.model.init(key, (8, 8, 1))
        return params, state

    params, state = jax.eval_shape(init, key)
    out_shape = shapes["out"]
    y = jax.eval_shape(
        lambda p, s, x: ae.model.apply(p, s, x)[0],
        params,
        state,
        jax.ShapeDtypeStruct((3, 8, 8, 1), jnp.float32),
    )
    code = jax.eval_shape(
        lambda p, s, x: ae.encoder.apply(p, s, x)[0],
        params["encoder_0"],
        state["encoder_0"],
        jax.ShapeDtypeStruct((3, 8, 8, 1), jnp.float32),
    )
    assert out_shape == (8, 8, 1) and code.shape == (3, 2, 2, 2) and y.shape == (3, 8, 8, 1)
    assert params["encoder_0"]["conv2d_0"]["w"].shape == (3, 3, 1, 4)


def test_autoencoder_reconstructs_better_after_training(key):
    x = low_rank_data()
    ae = dense_autoencoder(12, code_size=2, hidden=(16,))
    _, params, state = jax.jit(ae.model.init, static_argnums=1)(key, (12,))
    before = float(jnp.mean(reconstruction_error(ae.model, params, state, x)))
    ts, _ = fit(
        ae.model,
        losses.mean_squared_error,
        optim.adam(1e-2),
        x,
        x,
        epochs=40,
        batch_size=32,
        verbose=0,
    )
    after = float(jnp.mean(reconstruction_error(ae.model, ts.params, ts.state, x)))
    assert after < 0.2 * before


def test_gan_losses_are_the_binary_cross_entropies():
    real, fake = jnp.array([[2.0], [-1.0]]), jnp.array([[0.5], [-3.0]])
    log_sigmoid = jax.nn.log_sigmoid
    expected_d = -jnp.mean(log_sigmoid(real)) - jnp.mean(log_sigmoid(-fake))
    chex.assert_trees_all_close(discriminator_loss(real, fake), expected_d, atol=1e-6)
    chex.assert_trees_all_close(generator_loss(fake), -jnp.mean(log_sigmoid(fake)), atol=1e-6)


def _players():
    generator = serial(Dense(16), jax.nn.relu, Dense(2))
    discriminator = serial(Dense(16), jax.nn.relu, Dense(1))
    return generator, discriminator


def test_gan_step_updates_both_players_with_their_own_optimizer(key):
    generator, discriminator = _players()
    g_opt, d_opt = optax.sgd(0.05), optax.sgd(0.05)
    gs = jax.jit(
        lambda key: init_gan(
            generator, discriminator, g_opt, d_opt, latent_dim=3, data_shape=(2,), key=key
        )
    )(key)
    real = jnp.asarray(np.random.default_rng(0).normal(3.0, 0.5, size=(256, 2)), jnp.float32)
    step = jax.jit(make_gan_step(generator, discriminator, g_opt, d_opt, latent_dim=3))
    new, logs = step(gs, real)
    assert isinstance(new, GANState) and int(new.step) == 1
    assert set(logs) == {"disc_loss", "gen_loss", "d_real", "d_fake"}
    changed = jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)),
        (gs.gen_params, gs.disc_params),
        (new.gen_params, new.disc_params),
    )
    assert all(jax.tree.leaves(changed))

    # the discriminator step lowered its loss (fakes from the unchanged generator, fixed noise)
    fake = sample(generator, gs.gen_params, gs.gen_state, jax.random.key(5), 256, 3)

    def d_loss(params):
        logits = lambda x: discriminator.apply(params, gs.disc_state, x)[0]  # noqa: E731
        return discriminator_loss(logits(real), logits(fake))

    assert float(d_loss(new.disc_params)) < float(d_loss(gs.disc_params))


def test_gan_training_moves_samples_toward_the_data(key):
    generator, discriminator = _players()
    g_opt, d_opt = optim.adam(5e-3, b1=0.5), optim.adam(5e-3, b1=0.5)
    gs = jax.jit(
        lambda key: init_gan(
            generator, discriminator, g_opt, d_opt, latent_dim=3, data_shape=(2,), key=key
        )
    )(key)
    data = jnp.asarray(np.random.default_rng(1).normal(3.0, 0.3, size=(512, 2)), jnp.float32)
    train = make_gan_train(generator, discriminator, g_opt, d_opt, latent_dim=3, batch_size=64)

    def distance(gs):
        samples = sample(generator, gs.gen_params, gs.gen_state, jax.random.key(9), 512, 3)
        return float(jnp.linalg.norm(samples.mean(axis=0) - data.mean(axis=0)))

    start = distance(gs)
    gs, logs = train(gs, data, 300)
    assert logs["disc_loss"].shape == (300,) and np.all(np.isfinite(logs["gen_loss"]))
    assert abs(float(logs["gen_loss"][-20:].mean() - logs["gen_loss"][:20].mean())) > 0.01
    assert distance(gs) < 0.5 * start
