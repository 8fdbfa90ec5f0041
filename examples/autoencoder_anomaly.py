"""Anomaly detection with an autoencoder's reconstruction error on the bundled 8x8 digits.

    python examples/autoencoder_anomaly.py [--epochs 40] [--classes 0 1 ... 9]

For each held-out digit class: train a dense autoencoder (64-32-8-32-64, sigmoid output) on the
other nine classes only, then score the test images (normal classes plus every image of the held
out class) by reconstruction error. Figure of merit: ROC-AUC of that score for finding the held-out
class, next to PCA with the same code size (8 components) as a linear baseline.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from jaxnet import losses, optim
from jaxnet.models import dense_autoencoder, reconstruction_error
from jaxnet.train import fit

CODE = 8


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--classes", type=int, nargs="*", default=list(range(10)))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # Every class trains on the same number of images, so the ten fits are one program: `fit`
    # keeps the programs it compiled in this process (jaxnet.compilation.compile_cached), and
    # the fits after the first compile nothing (scoring sets of a new size compile their own).

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.3, random_state=args.seed, stratify=digits.target
    )
    print(f"{'anomaly':>7s} {'AE ROC-AUC':>10s} {'PCA ROC-AUC':>11s} {'time':>6s}")
    aucs = []
    rng = np.random.default_rng(args.seed)
    n_normal = min((y_train != d).sum() for d in range(10))
    for digit in args.classes:
        start = time.perf_counter()
        normal = rng.permutation(x_train[y_train != digit])[:n_normal]
        is_anomaly = np.concatenate([y_test == digit, np.ones((y_train == digit).sum(), bool)])
        scored = np.concatenate([x_test, x_train[y_train == digit]])  # never seen in training

        ae = dense_autoencoder(64, CODE, hidden=(32,), output_activation="sigmoid")
        ts, _ = fit(
            ae.model, losses.mean_squared_error, optim.adam(3e-3), normal, normal,
            epochs=args.epochs, batch_size=32, seed=args.seed, verbose=0,
        )  # fmt: skip
        ae_auc = roc_auc_score(
            is_anomaly, reconstruction_error(ae.model, ts.params, ts.state, scored)
        )

        pca = PCA(CODE).fit(normal)
        pca_error = ((pca.inverse_transform(pca.transform(scored)) - scored) ** 2).mean(axis=1)
        pca_auc = roc_auc_score(is_anomaly, pca_error)
        aucs.append((ae_auc, pca_auc))
        print(f"{digit:7d} {ae_auc:10.3f} {pca_auc:11.3f} {time.perf_counter() - start:5.1f}s")
    ae_mean, pca_mean = np.mean(aucs, axis=0)
    print(f"{'mean':>7s} {ae_mean:10.3f} {pca_mean:11.3f}")


if __name__ == "__main__":
    main()
