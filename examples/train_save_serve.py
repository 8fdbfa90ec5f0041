"""From training to serving: train, save, reload elsewhere, export, compare, time.

    python examples/train_save_serve.py --out out/serve [--epochs 20] [--repeats 7]

Trains the textbook digits MLP (raw pixels standardised) and a small CNN (pixels / 16) on
scikit-learn's 8x8 digits, saves both with their preprocessing (``jaxnet.save_model``), reloads
them in a second Python process that has none of this script's code, exports each as StableHLO
(``jaxnet.export``) and ONNX (``jaxnet.export_onnx``, needs ``jaxnet-classic[onnx]``), checks
that every path gives the same probabilities, and times inference (examples/s at batch 1 and
256, median of ``--repeats``) for ``jaxnet.predict``, ``SavedModel.predict``, the exported
StableHLO, onnxruntime and Keras ``model.predict`` (same weights; needs ``keras``). Missing
optional packages drop their rows. Everything is written under ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

import jaxnet
from jaxnet import activations, datasets, layers, losses, metrics, optim

SECOND_PROCESS = """
import sys
import numpy as np
import jaxnet

out = sys.argv[1]
x = np.load(out + "/x_test_raw.npy")
results = {}
for name, shape in (("mlp", (-1, 64)), ("cnn", (-1, 8, 8, 1))):
    saved = jaxnet.load_model(f"{out}/{name}")
    results[name] = np.asarray(saved.predict(x.reshape(shape)))
np.savez(out + "/second_process.npz", **results)
print("second process: loaded", sorted(results), "without the training script")
"""


def cnn() -> jaxnet.Layer:
    conv = dict(padding="SAME", kernel_init="he_normal")
    return jaxnet.serial(
        layers.Conv2D(16, 3, **conv),
        jaxnet.activations.Relu(),
        layers.MaxPool(2),  # 8x8 -> 4x4
        layers.Conv2D(32, 3, **conv),
        jaxnet.activations.Relu(),
        layers.MaxPool(2),  # 4x4 -> 2x2
        layers.Flatten(),
        layers.Dense(10),
        name="cnn",
    )


def train(out: Path, epochs: int, seed: int):
    """Train both models; save them with the preprocessing they were trained with."""
    data = datasets.load_dataset("digits")  # raw pixels 0..16, (1797, 64)
    (x_train, y_train), (x_test, y_test) = datasets.train_test_split(data.x, data.y, 0.2, seed)
    x_train_std, (mean, std) = datasets.standardize(x_train)
    images = x_train.reshape(-1, 8, 8, 1) / np.float32(16.0)
    mlp = jaxnet.classifier_mlp(10, hidden=(100, 100))
    # A custom model is saved with its task and output activation through a Recipe.
    conv = jaxnet.Recipe(
        cnn(),
        losses.sparse_categorical_cross_entropy,
        {"accuracy": metrics.accuracy},
        activations.softmax,
    )
    runs = {
        "mlp": (mlp, x_train_std, (64,), jaxnet.Preprocessing(mean, std)),
        "cnn": (conv, images, (8, 8, 1), jaxnet.Preprocessing(feature_std=np.float32(16.0))),
    }
    models = {}
    for name, (recipe, x, shape, pre) in runs.items():
        start = time.perf_counter()
        ts, _ = jaxnet.fit(
            recipe.model,
            recipe.loss,
            optim.adam(1e-3),
            x,
            y_train,
            epochs=epochs,
            seed=seed,
            verbose=0,
        )
        pre = pre._replace(class_names=data.class_names, feature_names=data.feature_names)
        saved_path = jaxnet.save_model(
            out / name, recipe, ts, input_shape=shape, preprocessing=pre, overwrite=True
        )
        saved = jaxnet.load_model(saved_path)
        x_test_raw = x_test.reshape(-1, *shape)
        accuracy = float(np.mean(np.asarray(saved.predict(x_test_raw, "classes")) == y_test))
        seconds = time.perf_counter() - start
        print(f"{name}: {epochs} epochs in {seconds:.1f}s, test accuracy {accuracy:.4f}")
        scaled = np.asarray(pre.transform(x_test_raw))
        models[name] = (recipe, ts, saved, scaled, x_test_raw)
    np.save(out / "x_test_raw.npy", x_test)
    return models


def second_process(out: Path) -> dict:
    """Reload both saved models in a fresh interpreter; return its predictions."""
    root = str(Path(jaxnet.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=out,
    )
    if done.returncode:
        raise SystemExit(f"the second process failed:\n{done.stderr[-2000:]}")
    print(done.stdout.strip())
    return dict(np.load(out / "second_process.npz"))


def keras_model(name: str, params, pre):
    """The same network in Keras 3 (JAX backend) with the jaxnet weights and preprocessing."""
    import keras

    L = keras.layers
    if name == "mlp":
        net = [
            keras.Input((64,)),
            L.Normalization(mean=pre.feature_mean, variance=pre.feature_std**2),
            L.Dense(100, activation="relu"),
            L.Dense(100, activation="relu"),
        ]
    else:
        same = dict(padding="same", activation="relu")
        net = [
            keras.Input((8, 8, 1)),
            L.Rescaling(1 / 16),
            L.Conv2D(16, 3, **same),
            L.MaxPooling2D(2),
            L.Conv2D(32, 3, **same),
            L.MaxPooling2D(2),
            L.Flatten(),
        ]
    model = keras.Sequential([*net, L.Dense(10, activation="softmax")])
    with_weights = [layer for layer in model.layers if layer.weights]
    jaxnet_layers = [p for p in params.values() if p]  # Dense/Conv params, in order
    for layer, p in zip(with_weights, jaxnet_layers, strict=True):
        layer.set_weights([np.asarray(p["w"]), np.asarray(p["b"])])
    return model


def rates(jobs: dict, repeats: int) -> dict:
    """Examples per second of each ``fn(x)`` in ``jobs`` (``{key: (fn, x)}``, ``fn`` blocks):
    the median of ``repeats`` timed runs of about 1000 examples each. The jobs take turns within
    each repeat, so a burst of load from other processes hits them alike."""
    for fn, x in jobs.values():
        fn(x)  # compile / warm up
    times = {key: [] for key in jobs}
    for _ in range(repeats):
        for key, (fn, x) in jobs.items():
            calls = max(1, 1024 // len(x))
            start = time.perf_counter()
            for _ in range(calls):
                fn(x)
            times[key].append((time.perf_counter() - start) / (calls * len(x)))
    return {key: 1.0 / statistics.median(seconds) for key, seconds in times.items()}


def runners(name, recipe, ts, saved, out: Path, keras_ok: bool, onnx_ok: bool) -> dict:
    """``{label: (fn(x_raw) -> probabilities, takes_raw)}`` for every way to serve the model."""
    out_paths = {"stablehlo": out / f"{name}.stablehlo", "onnx": out / f"{name}.onnx"}
    jaxnet.export(saved, out_paths["stablehlo"])
    serve = jaxnet.load_exported(out_paths["stablehlo"])
    found = {
        "jaxnet.predict": (
            lambda x: jax.block_until_ready(jaxnet.predict(recipe, ts.params, ts.state, x)),
            False,
        ),
        "SavedModel.predict": (lambda x: jax.block_until_ready(saved.predict(x)), True),
        "exported StableHLO": (lambda x: jax.block_until_ready(serve(x)), True),
    }
    if onnx_ok:
        import onnxruntime

        jaxnet.export_onnx(saved, out_paths["onnx"])
        session = onnxruntime.InferenceSession(
            str(out_paths["onnx"]), providers=["CPUExecutionProvider"]
        )
        found["onnxruntime"] = (lambda x: session.run(None, {"x": x})[0], True)
    if keras_ok:
        model = keras_model(name, ts.params, saved.preprocessing)
        found["keras model.predict"] = (
            lambda x: model.predict(x, batch_size=len(x), verbose=0),
            True,
        )
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/serve", help="everything is written here")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("KERAS_HOME", str(out / "keras"))  # keras writes its config here
    os.environ.setdefault("XDG_CACHE_HOME", str(out / "cache"))  # onnxruntime, its device id
    onnx_ok = all(importlib.util.find_spec(m) for m in ("jax2onnx", "onnxruntime"))
    keras_ok = importlib.util.find_spec("keras") is not None
    for missing, what in ((not onnx_ok, "onnx extra"), (not keras_ok, "keras")):
        if missing:
            print(f"note: no {what}; its rows are left out")

    models = train(out, args.epochs, args.seed)
    reloaded = second_process(out)
    jobs, differences = {}, {}
    for name, (recipe, ts, saved, scaled, raw) in models.items():
        reference = np.asarray(jaxnet.predict(recipe, ts.params, ts.state, scaled))
        difference = np.abs(reloaded[name] - reference).max()
        print(f"{name}: second process max |p - predict| {difference:.1e}")
        found = runners(name, recipe, ts, saved, out, keras_ok, onnx_ok)
        for label, (fn, takes_raw) in found.items():
            x = raw if takes_raw else scaled
            differences[name, label] = float(np.abs(np.asarray(fn(x)) - reference).max())
            jobs |= {(name, label, batch): (fn, x[:batch]) for batch in (1, 256)}
    speeds = rates(jobs, args.repeats)
    rows, results = [], {}
    for (name, label), difference in differences.items():
        one, many = speeds[name, label, 1], speeds[name, label, 256]
        rows.append([name, label, one, many, difference])
        results[f"{name}/{label}"] = {
            "batch_1": one,
            "batch_256": many,
            "max_abs_difference": difference,
        }
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{jax.devices()[0].platform}, jax {jax.__version__}"
    )
    date = datetime.date.today().isoformat()
    print(f"\n# inference on digits, examples/s (median of {args.repeats}); {date}, {machine}\n")
    print("| model | runner | batch 1 | batch 256 | max abs diff vs predict |")
    print("|---|---|---|---|---|")
    for name, label, one, many, difference in rows:
        print(f"| {name} | {label} | {one:,.0f} | {many:,.0f} | {difference:.1e} |")
    (out / "results.json").write_text(
        json.dumps({"date": date, "machine": machine, "results": results}, indent=1)
    )


if __name__ == "__main__":
    main()
