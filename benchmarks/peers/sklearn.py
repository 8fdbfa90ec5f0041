"""scikit-learn's ``MLPClassifier`` (Adam): one ``partial_fit`` per epoch. MLPs only."""

from __future__ import annotations

import time

import numpy as np
from sklearn.neural_network import MLPClassifier

from peers.spec import ADAM, LEARNING_RATE, Runner, Skip, Workload


def build(workload: Workload) -> Runner:
    if workload.kinds() != {"dense"} or len(workload.input_shape) != 1:
        raise Skip("MLPClassifier is a dense MLP only")
    hidden = tuple(layer[1] for layer in workload.layers[:-1])
    classifier = MLPClassifier(
        hidden,
        solver="adam",
        learning_rate_init=LEARNING_RATE,
        batch_size=workload.batch,
        beta_1=ADAM["b1"],
        beta_2=ADAM["b2"],
        epsilon=ADAM["eps"],
        random_state=0,
    )
    classes = np.arange(workload.classes)

    def epoch_times(n: int) -> list[float]:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            classifier.partial_fit(workload.x, workload.y, classes=classes)
            times.append(time.perf_counter() - start)
        return times

    return Runner(epoch_times, note="float32 input; partial_fit = one shuffled epoch")
