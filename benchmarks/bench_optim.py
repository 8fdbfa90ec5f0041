"""Update throughput of jaxnet's optimizers against optax's, on a ~10M-parameter pytree.

Each step is one jitted ``update`` + ``apply_updates`` (parameters and state donated, as in a
training loop). Both libraries run in the same process, interleaved repeat by repeat, after a
warm-up; each timing ends with ``block_until_ready``. Prints a Markdown table of medians and the
ratio optax_time / jaxnet_time (above 1: jaxnet is faster).

    python benchmarks/bench_optim.py            # 30 repeats
    python benchmarks/bench_optim.py --quick    # 7 repeats
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from jaxnet import optim

SHAPES = {
    "dense_0": {"kernel": (2048, 2048), "bias": (2048,)},
    "dense_1": {"kernel": (2048, 2048), "bias": (2048,)},
    "dense_2": {"kernel": (1536, 1024), "bias": (1024,)},
    "scale": (),
}


def _make(shapes, seed):
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    arrays = [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, arrays)


def _pairs():
    def both(name, **kwargs):
        return name, getattr(optim, name)(**kwargs), getattr(optax, name)(**kwargs)

    return [
        ("sgd", optim.sgd(1e-2), optax.sgd(1e-2)),
        ("sgd (momentum 0.9)", optim.sgd(1e-2, 0.9), optax.sgd(1e-2, 0.9)),
        both("adagrad", learning_rate=1e-2),
        both("rmsprop", learning_rate=1e-3),
        ("rmsprop (centered, momentum)",)
        + tuple(m.rmsprop(1e-3, centered=True, momentum=0.9) for m in (optim, optax)),
        both("adadelta", learning_rate=1.0),
        both("adam", learning_rate=1e-3),
        ("adam (schedule)",)
        + tuple(m.adam(m.warmup_cosine_decay_schedule(0, 1e-3, 10, 1000)) for m in (optim, optax)),
        both("adamw", learning_rate=1e-3, weight_decay=1e-4),
        both("nadam", learning_rate=1e-3),
        both("adamax", learning_rate=1e-3),
        both("lion", learning_rate=1e-4),
        both("lamb", learning_rate=1e-3, weight_decay=1e-2),
    ]


def _step_fn(opt, apply_updates):
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7 repeats instead of 30")
    args = parser.parse_args(argv)
    repeats = 7 if args.quick else 30
    grads = _make(SHAPES, seed=1)
    n_params = sum(x.size for x in jax.tree.leaves(grads))
    print(
        f"{n_params / 1e6:.1f}M parameters, {repeats} repeats, device {jax.devices()[0]}, ", end=""
    )
    print(f"jax {jax.__version__}, optax {optax.__version__}\n")
    print("| optimizer | jaxnet ms | optax ms | optax / jaxnet |")
    print("|---|---:|---:|---:|")
    ratios = []
    for name, ours, theirs in _pairs():
        runs = {}
        for label, opt, apply in (
            ("jaxnet", ours, optim.apply_updates),
            ("optax", theirs, optax.apply_updates),
        ):
            params = _make(SHAPES, seed=0)
            state = opt.init(params)
            step = _step_fn(opt, apply)
            for _ in range(3):  # compile and warm up
                params, state = jax.block_until_ready(step(params, state, grads))
            runs[label] = [step, params, state, []]
        for _ in range(repeats):  # interleaved, so load changes hit both alike
            for run in runs.values():
                step, params, state, times = run
                start = time.perf_counter()
                params, state = jax.block_until_ready(step(params, state, grads))
                times.append(time.perf_counter() - start)
                run[1], run[2] = params, state
        ours_ms = 1e3 * statistics.median(runs["jaxnet"][3])
        theirs_ms = 1e3 * statistics.median(runs["optax"][3])
        ratios.append(theirs_ms / ours_ms)
        print(f"| {name} | {ours_ms:.2f} | {theirs_ms:.2f} | {theirs_ms / ours_ms:.3f} |")
    print(f"\ngeometric mean of optax / jaxnet: {statistics.geometric_mean(ratios):.3f}")


if __name__ == "__main__":
    main()
