"""Rosenblatt's perceptron: it converges on separable data and cannot learn XOR; an MLP can.

    python examples/perceptron_xor.py [--epochs 20]

1. Iris setosa vs versicolor on petal length/width (bundled with scikit-learn, linearly
   separable): the errors per epoch fall to zero and stay there (the convergence theorem).
2. XOR: every epoch makes at least one mistake, forever: no line separates the classes.
3. A 2-4-1 MLP (tanh hidden layer, sigmoid output) trained by backpropagation solves XOR.
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_iris

from jaxnet import losses, optim
from jaxnet.core import serial
from jaxnet.layers import Dense
from jaxnet.perceptron import predict, train_perceptron
from jaxnet.train import fit
from jaxnet.train import predict as predict_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)

    iris = load_iris()
    keep = iris.target < 2  # setosa (0) vs versicolor (1)
    x = iris.data[keep][:, 2:4].astype(np.float32)  # petal length, petal width
    y = iris.target[keep].astype(np.float32)
    w, b, errors = train_perceptron(x, y, epochs=args.epochs, lr=0.1)
    accuracy = float(np.mean(np.asarray(predict(w, b, x)) == y))
    print("iris setosa vs versicolor, errors per epoch:", np.asarray(errors).tolist())
    print(
        f"  converged: training accuracy {accuracy:.3f}, w = {np.round(w, 3)}, b = {float(b):.3f}\n"
    )

    x_xor = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y_xor = np.array([0, 1, 1, 0], np.float32)
    w, b, errors = train_perceptron(x_xor, y_xor, epochs=args.epochs)
    wrong = int(np.sum(np.asarray(predict(w, b, x_xor)) != y_xor))
    print("XOR with a perceptron, errors per epoch:", np.asarray(errors).tolist())
    print(f"  never converges: {wrong} of 4 points still wrong after {args.epochs} epochs\n")

    mlp = serial(Dense(4), jnp.tanh, Dense(1))
    ts, _ = fit(
        mlp, losses.binary_cross_entropy, optim.adam(0.05), x_xor, y_xor,
        epochs=300, batch_size=4, verbose=0, seed=0,
    )  # fmt: skip
    logits = np.asarray(predict_model(mlp, ts.params, ts.state, x_xor)).ravel()
    outputs = np.array2string(1 / (1 + np.exp(-logits)), precision=3)
    print(f"XOR with a 2-4-1 MLP: outputs {outputs}, "
          f"{int(np.sum((logits > 0) != y_xor))} of 4 wrong")  # fmt: skip


if __name__ == "__main__":
    main()
