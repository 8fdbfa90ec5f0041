"""Model builders beyond a single stack: autoencoders and generative adversarial networks.

Autoencoder: an ``encoder`` squeezes the input into a small code, a ``decoder`` rebuilds the input
from it, and the whole ``model = serial(encoder, decoder)`` is trained to reproduce its input
(``fit(model, mse, opt, x, x)``). Inputs unlike the training data reconstruct badly, so the
reconstruction error is an anomaly score.

GAN (Goodfellow et al., 2014): a generator ``G(z)`` maps noise to samples, a discriminator
``D(x)`` outputs a logit "x is real". They train in alternation, each with its own optimizer, as
pure functions over a :class:`GANState`.

>>> ae = dense_autoencoder(64, code_size=8)
>>> params, state = init_model(ae.model, jax.random.key(0), (64,))
>>> x = jnp.ones((5, 64))
>>> ae.model.apply(params, state, x)[0].shape       # the reconstruction
(5, 64)
>>> ae.encoder.apply(params["encoder_0"], state["encoder_0"], x)[0].shape   # the code
(5, 8)

Train it to reproduce its input: ``fit(ae.model, losses.mean_squared_error, optim.adam(1e-3),
x, x)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet import activations, registry
from jaxnet.core import Layer, described_as, init_model, serial
from jaxnet.errors import ConfigError, check_int
from jaxnet.init import recommended_for
from jaxnet.layers.conv import Conv2D
from jaxnet.layers.dense import Dense
from jaxnet.layers.pooling import MaxPool, UpSample
from jaxnet.losses import binary_cross_entropy
from jaxnet.optim import apply_updates


class Autoencoder(NamedTuple):
    """``model = serial(encoder, decoder)``, params ``{"encoder_0": ..., "decoder_1": ...}``:
    ``encoder.apply(params["encoder_0"], ...)`` reuses the trained encoder alone."""

    encoder: Layer
    decoder: Layer
    model: Layer


def _activation_layers(name: str | None) -> list:
    return [] if name in (None, "linear", "identity") else [activations.Activation(name)]


def dense_autoencoder(
    input_dim: int,
    code_size: int,
    hidden: Sequence[int] = (64,),
    activation: str = "relu",
    output_activation: str | None = None,
) -> Autoencoder:
    """A stacked autoencoder ``input_dim -> hidden -> code_size -> reversed(hidden) -> input_dim``.

    The code layer is linear; ``output_activation="sigmoid"`` suits inputs scaled to [0, 1].
    """
    check_int("autoencoder", "code_size", code_size, 1)
    init = recommended_for(activation)
    encoder, decoder = [], []
    for units in hidden:
        encoder += [Dense(units, kernel_init=init), activations.Activation(activation)]
    encoder.append(Dense(code_size))
    for units in reversed(hidden):
        decoder += [Dense(units, kernel_init=init), activations.Activation(activation)]
    decoder += [Dense(input_dim), *_activation_layers(output_activation)]
    encoder, decoder = serial(*encoder, name="encoder"), serial(*decoder, name="decoder")
    model = described_as(
        serial(encoder, decoder, name="autoencoder"),
        "dense_autoencoder",
        input_dim=input_dim,
        code_size=code_size,
        hidden=tuple(hidden),
        activation=activation,
        output_activation=output_activation,
    )
    return Autoencoder(encoder, decoder, model)


def conv_autoencoder(
    input_shape: Sequence[int],
    filters: Sequence[int] = (16, 8),
    activation: str = "relu",
    output_activation: str | None = None,
) -> Autoencoder:
    """A convolutional autoencoder for ``(height, width, channels)`` images.

    Encoder: ``[Conv2D(f, 3, SAME) -> activation -> MaxPool(2)]`` per ``f`` in ``filters``; the
    code is ``(h / 2^L, w / 2^L, filters[-1])``. Decoder: ``[UpSample(2) -> Conv2D -> activation]``
    in reverse, then ``Conv2D(channels, 3, SAME)`` and ``output_activation``.
    """
    height, width, channels = input_shape
    scale = 2 ** len(filters)
    if height % scale or width % scale:
        raise ConfigError(
            f"{len(filters)} pooling stages need height and width divisible by {scale}, "
            f"got {tuple(input_shape)}",
            ("conv_autoencoder",),
        )
    init = recommended_for(activation)
    encoder, decoder = [], []
    for f in filters:
        encoder += [
            Conv2D(f, 3, padding="SAME", kernel_init=init),
            activations.Activation(activation),
            MaxPool(2),
        ]
    for f in reversed(filters):
        decoder += [
            UpSample(2),
            Conv2D(f, 3, padding="SAME", kernel_init=init),
            activations.Activation(activation),
        ]
    decoder += [Conv2D(channels, 3, padding="SAME"), *_activation_layers(output_activation)]
    encoder, decoder = serial(*encoder, name="encoder"), serial(*decoder, name="decoder")
    model = described_as(
        serial(encoder, decoder, name="autoencoder"),
        "conv_autoencoder",
        input_shape=tuple(input_shape),
        filters=tuple(filters),
        activation=activation,
        output_activation=output_activation,
    )
    return Autoencoder(encoder, decoder, model)


def reconstruction_error(model: Layer, params, state, x):
    """Per-example mean squared reconstruction error ``(batch,)``: the anomaly score."""
    x_hat, _ = model.apply(params, state, x, train=False)
    return jnp.mean(((x_hat - x) ** 2).reshape(x.shape[0], -1), axis=1)


# --------------------------------------------------------------------------------------- GAN


class GANState(NamedTuple):
    """Both players' params, layer states and optimizer states, the step count and a fixed key."""

    gen_params: Any
    gen_state: Any
    disc_params: Any
    disc_state: Any
    gen_opt_state: Any
    disc_opt_state: Any
    step: jax.Array
    key: jax.Array


def init_gan(
    generator: Layer,
    discriminator: Layer,
    gen_optimizer,
    disc_optimizer,
    *,
    latent_dim: int,
    data_shape: Sequence[int],
    key,
) -> GANState:
    """Initialise ``G`` on ``(latent_dim,)`` noise and ``D`` on ``data_shape`` samples."""
    k_g, k_d, k_train = jax.random.split(key, 3)
    gen_params, gen_state = init_model(generator, k_g, (latent_dim,))
    disc_params, disc_state = init_model(discriminator, k_d, tuple(data_shape))
    return GANState(
        gen_params,
        gen_state,
        disc_params,
        disc_state,
        gen_optimizer.init(gen_params),
        disc_optimizer.init(disc_params),
        jnp.zeros((), jnp.int32),
        k_train,
    )


def discriminator_loss(real_logits, fake_logits):
    """``BCE(D(x), 1) + BCE(D(G(z)), 0)``: minus the log-likelihood of telling real from fake."""
    return binary_cross_entropy(real_logits, jnp.ones_like(real_logits)) + binary_cross_entropy(
        fake_logits, jnp.zeros_like(fake_logits)
    )


def generator_loss(fake_logits):
    """The non-saturating loss ``BCE(D(G(z)), 1) = -log D(G(z))`` (strong gradients early on,
    when ``D`` easily rejects the fakes), as recommended by Goodfellow et al."""
    return binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits))


def sample(generator: Layer, gen_params, gen_state, key, n: int, latent_dim: int):
    """``n`` generator samples from standard normal noise (inference mode)."""
    z = jax.random.normal(key, (n, latent_dim))
    return generator.apply(gen_params, gen_state, z, train=False)[0]


def make_gan_step(
    generator: Layer, discriminator: Layer, gen_optimizer, disc_optimizer, latent_dim
):
    """``gan_step(gs, real_batch) -> (gs, logs)``: a discriminator update, then a generator update.

    Algorithm 1 of Goodfellow et al. with ``k = 1``: ``D`` takes a step on real data and fakes from
    the current ``G``; then ``G`` takes a step against the updated ``D`` on fresh noise. ``logs``:
    ``disc_loss``, ``gen_loss``, ``d_real``/``d_fake`` (mean probability ``D`` gives real samples
    and fakes). Pure; wrap in ``jax.jit`` or scan it (:func:`make_gan_train`).
    """

    def gan_step(gs: GANState, real):
        key = jax.random.fold_in(jax.random.fold_in(gs.key, 0), gs.step)
        k_zd, k_zg, k_gd, k_gg, k_dd, k_dg = jax.random.split(key, 6)
        n = real.shape[0]

        fake, gen_state = generator.apply(
            gs.gen_params,
            gs.gen_state,
            jax.random.normal(k_zd, (n, latent_dim)),
            key=k_gd,
            train=True,
        )
        fake = jax.lax.stop_gradient(fake)

        def d_objective(disc_params):
            real_logits, state = discriminator.apply(
                disc_params, gs.disc_state, real, key=k_dd, train=True
            )
            fake_logits, state = discriminator.apply(
                disc_params, state, fake, key=jax.random.fold_in(k_dd, 1), train=True
            )
            loss = discriminator_loss(real_logits, fake_logits)
            return loss, (
                state,
                jax.nn.sigmoid(real_logits).mean(),
                jax.nn.sigmoid(fake_logits).mean(),
            )

        (d_loss, (disc_state, d_real, d_fake)), d_grads = jax.value_and_grad(
            d_objective, has_aux=True
        )(gs.disc_params)
        updates, disc_opt_state = disc_optimizer.update(d_grads, gs.disc_opt_state, gs.disc_params)
        disc_params = apply_updates(gs.disc_params, updates)

        def g_objective(gen_params):
            z = jax.random.normal(k_zg, (n, latent_dim))
            fake, new_gen_state = generator.apply(gen_params, gen_state, z, key=k_gg, train=True)
            logits, _ = discriminator.apply(disc_params, disc_state, fake, key=k_dg, train=True)
            return generator_loss(logits), new_gen_state

        (g_loss, gen_state), g_grads = jax.value_and_grad(g_objective, has_aux=True)(gs.gen_params)
        updates, gen_opt_state = gen_optimizer.update(g_grads, gs.gen_opt_state, gs.gen_params)
        gen_params = apply_updates(gs.gen_params, updates)

        logs = {"disc_loss": d_loss, "gen_loss": g_loss, "d_real": d_real, "d_fake": d_fake}
        new = GANState(
            gen_params,
            gen_state,
            disc_params,
            disc_state,
            gen_opt_state,
            disc_opt_state,
            gs.step + 1,
            gs.key,
        )
        return new, logs

    return gan_step


def make_gan_train(
    generator: Layer, discriminator: Layer, gen_optimizer, disc_optimizer, latent_dim, batch_size
):
    """``train(gs, data, steps) -> (gs, logs)``: ``steps`` GAN steps as one ``lax.scan``.

    Each step draws a batch of ``batch_size`` rows of ``data`` at random (with replacement across
    steps); ``logs`` are stacked per step. ``steps`` is static (compiled once per value).
    """
    check_int("gan", "batch_size", batch_size, 1)
    gan_step = make_gan_step(generator, discriminator, gen_optimizer, disc_optimizer, latent_dim)

    def train(gs: GANState, data, steps: int):
        def body(gs, _):
            index = jax.random.randint(
                jax.random.fold_in(jax.random.fold_in(gs.key, 1), gs.step),
                (batch_size,),
                0,
                data.shape[0],
            )
            return gan_step(gs, data[index])

        return jax.lax.scan(body, gs, None, length=steps)

    return jax.jit(train, static_argnums=2)


def _model_of(builder: Callable) -> Callable:
    """``builder(...).model``: the layer of a builder that returns several (an autoencoder)."""

    @functools.wraps(builder)
    def build_model(*args, **kwargs):
        return builder(*args, **kwargs).model

    return build_model


registry.layer(_model_of(dense_autoencoder), name="dense_autoencoder")
registry.layer(_model_of(conv_autoencoder), name="conv_autoencoder")
