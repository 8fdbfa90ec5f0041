"""Many jobs in one process: five fits of the digits MLP one after another, as a script's loop
over seeds or learning rates runs them.

    python benchmarks/bench_repeat.py [--rounds 3] [--epochs 50]

Each run is a fresh process with an empty compilation cache (as ``bench_cold.py``'s, whose
shape it trains: digits, 64-100-100-10 ReLU, Adam, batch 32): five ``jaxnet.fit`` calls, each
with a new model and optimizer, ``validation_data`` and a ``jaxnet.predict`` of the test set;
once over five seeds, once over five learning rates; against five scikit-learn
``MLPClassifier`` fits with ``score``. The first fit compiles; a later one finds the programs
this process compiled (:func:`jaxnet.compilation.compile_cached`) but for the initialisation,
which holds the learning rate. Medians over the rounds, interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402
from bench_cold import run_child  # noqa: E402

RATES = [1e-3, 2e-3, 3e-3, 5e-3, 1e-2]
JAXNET = (
    "import jax\nimport numpy as np\nimport jaxnet\nfrom jaxnet import losses, optim\n",
    """
fit_seconds = []
for i, rate in enumerate(RATES):
    begun = time.perf_counter()
    seed, rate = ({vary})
    model = common.digits_mlp()
    ts, history = jaxnet.fit(model, losses.sparse_categorical_cross_entropy, optim.adam(rate),
                             x_train, y_train, epochs=epochs, batch_size=32, seed=seed,
                             verbose=0, validation_data=(x_test, y_test))
    predicted = np.asarray(jaxnet.predict(model, ts.params, ts.state, x_test)).argmax(-1)
    accuracy = float((predicted == y_test).mean())
    fit_seconds.append(time.perf_counter() - begun)
""",
)
CASES = {
    "scikit-learn MLPClassifier, 5 seeds": (
        "import warnings\nfrom sklearn.neural_network import MLPClassifier\n",
        """
warnings.simplefilter("ignore")  # ConvergenceWarning: it runs exactly `epochs` epochs
fit_seconds = []
for seed in range(5):
    begun = time.perf_counter()
    classifier = MLPClassifier((100, 100), solver="adam", learning_rate_init=1e-3,
                               batch_size=32, max_iter=epochs, tol=0.0,
                               n_iter_no_change=epochs, random_state=seed)
    accuracy = classifier.fit(x_train, y_train).score(x_test, y_test)
    fit_seconds.append(time.perf_counter() - begun)
""",
    ),
    "jaxnet.fit, 5 seeds": (JAXNET[0], JAXNET[1].format(vary="i, 1e-3")),
    "jaxnet.fit, 5 learning rates": (JAXNET[0], JAXNET[1].format(vary="0, rate")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    args = parser.parse_args()
    fits = {name: [] for name in CASES}
    for round_ in range(args.rounds):
        for name, (imports, timed) in CASES.items():
            result = run_child(f"{imports}RATES = {RATES}\n", timed, args.epochs)
            fits[name].append(result["fits"])
            print(f"round {round_ + 1}: {name}: " + " ".join(f"{s:.2f}" for s in result["fits"]),
                  flush=True)  # fmt: skip
    rows = []
    reference = statistics.median(sum(f) for f in fits[next(iter(CASES))])
    for name, runs in fits.items():
        total = statistics.median(sum(f) for f in runs)
        first = statistics.median(f[0] for f in runs)
        later = statistics.median(s for f in runs for s in f[1:])
        rows.append([name, first, later, total, f"{total / reference:.2f}"])
    print(f"\n{common.machine()}, {os.cpu_count()} CPUs; {args.rounds} rounds, {args.epochs} "
          "epochs per fit, fresh process and empty compilation cache per run\n")  # fmt: skip
    header = ["five fits in one process", "first fit (s)", "each later fit (s)", "all five (s)",
              "x scikit-learn"]  # fmt: skip
    print(common.table(header, rows))


if __name__ == "__main__":
    main()
