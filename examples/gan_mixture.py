"""A GAN learning a 2-D mixture of 8 Gaussians on a ring (the classic mode-collapse test).

    python examples/gan_mixture.py [--steps 4000] [--out out/]

Generator and discriminator are small ReLU MLPs trained in alternation (one step each, Adam with
beta1 = 0.5) by ``jaxnet.models.make_gan_train`` — the whole run is one ``lax.scan``. Figures of
merit: how many of the 8 modes the samples cover (a mode counts when it receives at least 2% of
the samples) and the fraction of samples within 4 standard deviations of some mode. Saves a
scatter plot of samples vs data to ``<out>/gan.png`` (``--out docs/images`` refreshes the docs').
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from jaxnet import optim
from jaxnet.core import serial
from jaxnet.layers import Dense
from jaxnet.models import init_gan, make_gan_train, sample

MODES, RADIUS, STD, LATENT = 8, 2.0, 0.05, 2


def ring_centres():
    angles = 2 * np.pi * np.arange(MODES) / MODES
    return RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def mixture(n, seed=0):
    rng = np.random.default_rng(seed)
    return (ring_centres()[rng.integers(MODES, size=n)] + STD * rng.normal(size=(n, 2))).astype(
        np.float32
    )


def coverage(samples):
    """(modes with >= 2% of the samples, fraction of samples within 4 std of a mode)."""
    distance = np.linalg.norm(samples[:, None, :] - ring_centres()[None], axis=-1)
    near = distance.min(axis=1) < 4 * STD
    counts = np.bincount(distance.argmin(axis=1)[near], minlength=MODES)
    return int((counts >= 0.02 * len(samples)).sum()), float(near.mean())


def mlp(n_out):
    return serial(
        Dense(128, kernel_init="he_normal"), jax.nn.relu,
        Dense(128, kernel_init="he_normal"), jax.nn.relu,
        Dense(n_out),
    )  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out")
    args = parser.parse_args(argv)

    data = mixture(20_000, args.seed)
    generator, discriminator = mlp(2), mlp(1)
    g_opt, d_opt = optim.adam(1e-3, b1=0.5), optim.adam(1e-3, b1=0.5)
    gs = init_gan(
        generator, discriminator, g_opt, d_opt,
        latent_dim=LATENT, data_shape=(2,), key=jax.random.key(args.seed),
    )  # fmt: skip
    train = make_gan_train(generator, discriminator, g_opt, d_opt, LATENT, batch_size=256)

    def samples_of(gs, n=2000):
        return np.asarray(
            sample(generator, gs.gen_params, gs.gen_state, jax.random.key(1), n, LATENT)
        )

    start = time.perf_counter()
    print(f"{'step':>6s} {'D loss':>7s} {'G loss':>7s} {'D(real)':>8s} {'D(fake)':>8s} "
          f"{'modes':>5s} {'near':>5s}")  # fmt: skip
    chunk = args.steps // 4
    for done in range(chunk, args.steps + 1, chunk):
        gs, logs = train(gs, data, chunk)
        last = {k: float(np.mean(v[-100:])) for k, v in logs.items()}
        modes, near = coverage(samples_of(gs))
        print(f"{done:6d} {last['disc_loss']:7.3f} {last['gen_loss']:7.3f} {last['d_real']:8.3f} "
              f"{last['d_fake']:8.3f} {modes:5d} {near:5.2f}")  # fmt: skip
    seconds = time.perf_counter() - start
    modes, near = coverage(samples_of(gs))
    print(f"\n{modes}/{MODES} modes covered, {near:.0%} of samples within 4 std of a mode "
          f"({args.steps} steps, {seconds:.1f}s)")  # fmt: skip
    plot(data[:2000], samples_of(gs), [os.path.join(args.out, "gan.png")])


def plot(data, samples, paths):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    ax.scatter(*data.T, s=2, alpha=0.4, label="data")
    ax.scatter(*samples.T, s=2, alpha=0.4, label="GAN samples")
    ax.set_aspect("equal")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    ax.legend(loc="upper right", markerscale=5, fontsize=8)
    ax.set_title("GAN on a ring of 8 Gaussians", fontsize=10)
    fig.tight_layout()
    for path in paths:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fig.savefig(path)
        print(f"saved {path}")


if __name__ == "__main__":
    main()
