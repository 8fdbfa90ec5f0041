"""Cold start: a fresh process with an empty compilation cache trains the digits MLP once.

    python benchmarks/bench_cold.py [--rounds 3] [--epochs 50] [--cpus N [N ...]]

The demo's shape: digits (1437 training images), 64-100-100-10 ReLU, Adam 1e-3, batch 32, 50
epochs. Every run is its own Python process whose ``JAXNET_CACHE_DIR`` and
``JAX_COMPILATION_CACHE_DIR`` point at a new empty folder, so every program is compiled; the
runs are interleaved (one of each per round, scikit-learn's among them) and the table shows
medians over the rounds. "seconds" is the wall time after the imports and the data loading:
building, compiling and training, then predicting the test set the way each library's docs do
(``jaxnet.predict``; ``jax.jit`` of the hand-written apply; ``score``): what a script pays on
its first run. The import rows time
``import jax`` and ``import jaxnet`` alone, each in a fresh process.

Rows: scikit-learn's ``MLPClassifier`` (the reference), ``jaxnet.fit``, the same with its
initialisation's random bits from a compiled Threefry program rather than NumPy
(``jaxnet.random.HOST_DRAWS = 0``: what :func:`jaxnet.random.init_on_host` gains on this
device), ``jaxnet.fit`` with ``validation_data`` and a
:class:`~jaxnet.diagnostics.GradientMonitor`,
``jaxnet.sklearn.MLPClassifier`` where ``jaxnet.sklearn`` imports, and the floor of any trainer
that compiles its epoch with XLA: the same model, shuffle and Adam written directly in JAX and
optax as one jitted epoch, nothing else. "epoch compile" is the seconds spent lowering and
compiling the epoch program (``history.compile_seconds`` for ``jaxnet.fit``; it overlaps the
initialisation there). ``--cpus 1 2`` runs every case on the first CPU only and on the first
two, interleaved in each round (XLA sizes its thread pools from the CPUs a process may use):
a table per count, then how each row scales with the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Each case: (imports, then the timed code). ``x_train, x_test, y_train, y_test`` and ``epochs``
# are defined before the clock starts; the timed code leaves its accuracy in ``accuracy``.
DATA = "import common\nx_train, x_test, y_train, y_test = common.digits(0)\n"
JAXNET_FIT = """
model = common.digits_mlp()
ts, history = jaxnet.fit(model, losses.sparse_categorical_cross_entropy, optim.adam(1e-3),
                         x_train, y_train, epochs=epochs, batch_size=32, verbose=0{extra})
jax.block_until_ready(ts.params)
predicted = np.asarray(jaxnet.predict(model, ts.params, ts.state, x_test)).argmax(-1)
accuracy = float((predicted == y_test).mean())
compile_seconds = history.compile_seconds
"""
CASES = {
    "sklearn.neural_network.MLPClassifier": (
        "import warnings\nimport numpy as np\nfrom sklearn.neural_network import MLPClassifier\n",
        """
warnings.simplefilter("ignore")  # ConvergenceWarning: it runs exactly `epochs` epochs
classifier = MLPClassifier((100, 100), solver="adam", learning_rate_init=1e-3, batch_size=32,
                           max_iter=epochs, tol=0.0, n_iter_no_change=epochs, random_state=0)
classifier.fit(x_train, y_train)
accuracy = classifier.score(x_test, y_test)
""",
    ),
    "jaxnet.fit": (
        "import jax\nimport numpy as np\nimport jaxnet\nfrom jaxnet import losses, optim\n",
        JAXNET_FIT.format(extra=""),
    ),
    # The same fit with the initialisation's random bits from a compiled Threefry program, as
    # before they came from NumPy (jaxnet.random.init_on_host): what that path gains here.
    "jaxnet.fit, initialisation by compiled Threefry": (
        "import jax\nimport numpy as np\nimport jaxnet\nfrom jaxnet import losses, optim\n"
        "jaxnet.random.HOST_DRAWS = 0\n",
        JAXNET_FIT.format(extra=""),
    ),
    "jaxnet.fit + validation_data + GradientMonitor": (
        "import jax\nimport numpy as np\nimport jaxnet\nfrom jaxnet import losses, optim\n"
        "from jaxnet.diagnostics import GradientMonitor\n",
        JAXNET_FIT.format(
            extra=",\n    validation_data=(x_test, y_test), monitor=GradientMonitor(model)"
        ),
    ),
    "jaxnet.sklearn.MLPClassifier": (
        "import numpy as np\nimport jaxnet.sklearn\n",
        """
classifier = jaxnet.sklearn.MLPClassifier((100, 100), learning_rate_init=1e-3, batch_size=32,
                                          max_iter=epochs, random_state=0)
classifier.fit(x_train, y_train)
accuracy = classifier.score(x_test, y_test)
""",
    ),
}
# The floor of any trainer that compiles its epoch with XLA: the same model, shuffling and Adam
# written directly in JAX and optax, one jitted epoch (no checks, metrics or guard), nothing else.
HAND_WRITTEN = """
sizes = [64, 100, 100, 10]
keys = jax.random.split(jax.random.key(0), 3)
params = [(jax.nn.initializers.he_normal()(k, (a, b)), jnp.zeros(b))
          for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

def apply(params, x):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        x = jax.nn.relu(x) if i < len(params) - 1 else x
    return x

def loss(params, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y).mean()

optimizer = optax.adam(1e-3)

def epoch(params, opt_state, x, y, key):
    order = jax.random.permutation(key, len(x))[: len(x) // 32 * 32].reshape(-1, 32)

    def step(carry, rows):
        params, opt_state = carry
        grads = jax.grad(loss)(params, x[rows], y[rows])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(step, (params, opt_state), order)[0]

x, y = jnp.asarray(x_train, jnp.float32), jnp.asarray(y_train, jnp.int32)
carry = (params, optimizer.init(params))
compiling = time.perf_counter()
run = jax.jit(epoch).lower(*carry, x, y, jax.random.key(1)).compile()
compile_seconds = time.perf_counter() - compiling
epoch_keys = [jax.random.key(e) for e in range(epochs)]
running = time.perf_counter()
for e in range(epochs):
    carry = run(*carry, x, y, epoch_keys[e])
jax.block_until_ready(carry)
run_seconds = time.perf_counter() - running
predicted = np.asarray(jax.jit(apply)(carry[0], jnp.asarray(x_test, jnp.float32))).argmax(-1)
accuracy = float((predicted == y_test).mean())
"""
CASES["hand-written lax.scan epoch (JAX + optax)"] = (
    "import jax\nimport jax.numpy as jnp\nimport numpy as np\nimport optax\n",
    HAND_WRITTEN,
)
IMPORTS = {"import jax": "import jax", "import jaxnet": "import jaxnet"}

CHILD = """
import os
import time
{pin}
start = time.perf_counter()
{imports}
imported = time.perf_counter() - start
{data}
epochs = {epochs}
start = time.perf_counter()
{timed}
seconds = time.perf_counter() - start
import json
print("RESULT " + json.dumps({{"imported": imported, "seconds": seconds,
                              "accuracy": {accuracy},
                              "compile": globals().get("compile_seconds"),
                              "run": globals().get("run_seconds"),
                              "fits": globals().get("fit_seconds")}}))
"""


def run_child(imports: str, timed: str, epochs: int, cpus: list[int] | None,
              accuracy: str = "accuracy") -> dict:  # fmt: skip
    """Run one case in a fresh process with an empty compilation cache, on ``cpus`` (``None``:
    wherever this process may run); its figures."""
    pin = "" if cpus is None else f"os.sched_setaffinity(0, {cpus})  # before JAX starts"
    with tempfile.TemporaryDirectory(prefix="bench_cold_") as cache:
        env = {**os.environ, "JAXNET_CACHE_DIR": cache, "JAX_COMPILATION_CACHE_DIR": cache,
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}  # fmt: skip
        code = CHILD.format(imports=imports, data=DATA if timed else "", epochs=epochs,
                            timed=textwrap.dedent(timed), accuracy=accuracy, pin=pin)  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    line = next(s for s in done.stdout.splitlines() if s.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def has_jaxnet_sklearn() -> bool:
    code = "import jaxnet.sklearn"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    return done.returncode == 0


class Figures:
    """One CPU count's measurements: per case its seconds, accuracies and epoch compiles, and
    the floor's."""

    def __init__(self, names):
        self.seconds = {name: [] for name in names}
        self.accuracy = {name: [] for name in names}
        self.compiles = {name: [] for name in names}
        self.floors = []  # the hand-written epoch's compile + its epochs: no XLA trainer does less

    def add(self, name: str, result: dict) -> None:
        self.seconds[name].append(result["seconds"])
        self.accuracy[name].append(result["accuracy"])
        if result["compile"] is not None:
            self.compiles[name].append(result["compile"])
        if result["run"] is not None:
            self.floors.append(result["compile"] + result["run"])

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])


def report(figures: Figures, cpus: int, args) -> None:
    """The table of one CPU count, the import difference and the floor."""
    reference = figures.median(next(iter(CASES)))
    plain = figures.median("jaxnet.fit")
    rows = []
    for name, values in figures.seconds.items():
        median = statistics.median(values)
        if name in IMPORTS:
            rows.append([name, median, f"{min(values):.2f}-{max(values):.2f}", "", "", "", ""])
            continue
        compiles = figures.compiles[name]
        compiled = f"{statistics.median(compiles):.2f}" if compiles else ""
        rows.append([name, median, f"{min(values):.2f}-{max(values):.2f}", compiled,
                     f"{median / reference:.2f}", f"{median / plain:.2f}",
                     f"{statistics.median(figures.accuracy[name]):.3f}"])  # fmt: skip
    print(f"\n{common.machine()}, {cpus} CPUs; {args.rounds} rounds, {args.epochs} "
          "epochs, fresh process and empty compilation cache per run\n")  # fmt: skip
    header = ["run", "seconds (median)", "range", "epoch compile (s)", "x scikit-learn",
              "x jaxnet.fit", "test acc."]  # fmt: skip
    print(common.table(header, rows))
    imports = figures.median("import jaxnet") - figures.median("import jax")
    print(f"\nimport jaxnet - import jax: {imports:+.2f} s")
    floor = statistics.median(figures.floors)
    print(f"floor: compiling the hand-written epoch program and running its {args.epochs} epochs "
          f"(nothing else) takes {floor:.2f} s = {floor / reference:.2f}x scikit-learn's whole "
          "fit")  # fmt: skip


def report_cores(figures: dict[int, Figures]) -> None:
    """Each run's median and its ratio to scikit-learn's, side by side for each CPU count."""
    header, rows = ["run"], {}
    for cpus, f in figures.items():
        header += [f"{cpus} CPU{'s' if cpus > 1 else ''} (s)", "x scikit-learn"]
        reference = f.median(next(iter(CASES)))
        for name in [n for n in f.seconds if n not in IMPORTS]:
            rows.setdefault(name, [name])
            rows[name] += [f.median(name), f"{f.median(name) / reference:.2f}"]
        floor = statistics.median(f.floors)
        rows.setdefault("floor", ["the floor: hand-written epoch's compile + its epochs"])
        rows["floor"] += [floor, f"{floor / reference:.2f}"]
    print("\nby the CPUs each process may use (the same rounds):\n")
    print(common.table(header, list(rows.values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--cpus", type=int, nargs="+", help="run on the first N CPUs, each N")
    args = parser.parse_args()
    counts = args.cpus or [None]
    sets = {n: common.cpu_set(n) for n in counts}
    pins = {n: None if n is None else sets[n] for n in counts}  # pin only when asked
    cases = dict(CASES)
    if not has_jaxnet_sklearn():
        print("(jaxnet.sklearn does not import here: its row is skipped)")
        del cases["jaxnet.sklearn.MLPClassifier"]
    figures = {n: Figures([*cases, *IMPORTS]) for n in counts}
    for round_ in range(args.rounds):
        for n in counts:  # interleaved: each count sees the machine's same hour
            where = f" ({len(sets[n])} CPUs)" if len(counts) > 1 else ""
            for name, (imports, timed) in cases.items():
                result = run_child(imports, timed, args.epochs, pins[n])
                figures[n].add(name, result)
                print(f"round {round_ + 1}{where}: {name}: {result['seconds']:.2f} s", flush=True)
            for name, imports in IMPORTS.items():
                result = run_child(imports, "", args.epochs, pins[n], "None")
                figures[n].seconds[name].append(result["imported"])
    for n in counts:
        report(figures[n], len(sets[n]), args)
    if len(counts) > 1:
        report_cores({len(sets[n]): figures[n] for n in counts})


if __name__ == "__main__":
    main()
