"""The built-in studies: textbook claims put to a many-seed test on bundled real data.

``python -m jaxnet.studies NAME`` runs one; ``docs/studies.md`` has their tables and verdicts.
"""

from __future__ import annotations

from jaxnet.init import recommended_for
from jaxnet.studies.spec import Study, grid

# Each activation with its matched initializer (jaxnet.init.recommended_for, the one table).
MATCHED_INIT = {
    a: recommended_for(a) for a in ("logistic", "tanh", "relu", "leaky_relu", "elu", "selu")
}

ACTIVATIONS = Study(
    "activations",
    cells=tuple({"activation": a, "kernel_init": i, "name": a} for a, i in MATCHED_INIT.items()),
    dataset="digits",
    base={"hidden": (100, 100), "optimizer": "adam", "learning_rate": 1e-3},
    epochs=10,
    claim="performance improves logistic -> tanh -> ReLU -> Leaky ReLU -> ELU -> SELU "
    "(each with its matched initialiser)",
)

INITIALIZERS = Study(
    "initializers",
    cells=tuple(
        {"kernel_init": i, "name": i}
        for i in ("normal(1.0)", "glorot_uniform", "he_normal", "lecun_normal")
    ),
    dataset="digits",
    base={"hidden": (64,) * 8, "activation": "relu", "optimizer": "adam", "learning_rate": 1e-3},
    epochs=10,
    claim="match the initialiser to the activation (He for ReLU); unit-variance normal "
    "weights make a deep ReLU network hard to train",
)

# Four learning rates per optimizer, spaced ~3x, around its usual default.
_LEARNING_RATES = {
    "sgd": (0.03, 0.1, 0.3, 1.0),
    "momentum": (0.003, 0.01, 0.03, 0.1),
    "nesterov": (0.003, 0.01, 0.03, 0.1),
    "momentum_cosine": (0.01, 0.03, 0.1, 0.3),
    "adagrad": (0.03, 0.1, 0.3, 1.0),
    "rmsprop": (3e-4, 1e-3, 3e-3, 1e-2),
    "adam": (3e-4, 1e-3, 3e-3, 1e-2),
}

OPTIMIZERS = Study(
    "optimizers",
    cells=tuple(
        cell
        for optimizer, rates in _LEARNING_RATES.items()
        for cell in grid(optimizer=[optimizer], learning_rate=rates)
    ),
    dataset="digits",
    base={"hidden": (100, 100)},
    epochs=10,
    best_over="learning_rate",
    claim="Adam is the best default; SGD with momentum wins with a tuned learning-rate schedule",
)

BATCH_SIZE = Study(
    "batch_size",
    cells=tuple({"batch_size": b} for b in (8, 32, 128, 512)),
    dataset="digits",
    base={"hidden": (100, 100), "optimizer": "adam", "learning_rate": 1e-3},
    epochs=10,
    claim="small batches generalise better but train slower (equal epochs: a batch of 8 takes "
    "64x the steps of a batch of 512)",
)

REGULARIZATION = Study(
    "regularization",
    cells=(
        {"name": "none"},
        {"name": "dropout 0.2", "dropout": 0.2},
        {"name": "dropout 0.5", "dropout": 0.5},
        {"name": "l2 1e-4", "l2": 1e-4},
        {"name": "l2 1e-3", "l2": 1e-3},
    ),
    dataset="digits",
    base={"hidden": (256, 256), "optimizer": "adam", "learning_rate": 1e-3},
    epochs=100,
    n_train=300,
    claim="dropout with p = 0.5 on the hidden layers regularises a network that overfits "
    "(300 training images, 2 x 256 units)",
)

STUDIES = {s.name: s for s in (ACTIVATIONS, INITIALIZERS, OPTIMIZERS, BATCH_SIZE, REGULARIZATION)}
