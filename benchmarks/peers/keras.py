"""Keras 3 on the JAX backend: ``model.fit`` (jit-compiled step), epochs timed by a callback.

``KERAS_BACKEND=jax`` must be set before Keras is first imported; the suite sets it at start-up.
"""

from __future__ import annotations

import os
import time

from peers.spec import ADAM, LEARNING_RATE, Runner, Skip, Workload

os.environ.setdefault("KERAS_BACKEND", "jax")


def make_model(workload: Workload):
    import keras

    layers = [keras.Input(workload.input_shape)]
    for layer in workload.layers:
        kind = layer[0]
        if kind == "dense":
            layers.append(keras.layers.Dense(layer[1], activation=layer[2]))
        elif kind == "conv":
            layers.append(
                keras.layers.Conv2D(layer[1], layer[2], padding="same", activation=layer[3])
            )
        elif kind == "maxpool":
            layers.append(keras.layers.MaxPooling2D(layer[1]))
        elif kind == "flatten":
            layers.append(keras.layers.Flatten())
        elif kind == "gru":
            layers.append(keras.layers.GRU(layer[1]))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(
            LEARNING_RATE, beta_1=ADAM["b1"], beta_2=ADAM["b2"], epsilon=ADAM["eps"]
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def build(workload: Workload) -> Runner:
    import keras

    if keras.backend.backend() != "jax":
        raise Skip(f"Keras was imported with the {keras.backend.backend()} backend, not jax")
    model = make_model(workload)

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    def epoch_times(n: int) -> list[float]:
        timer = EpochTimer()
        timer.times = []
        model.fit(
            workload.x,
            workload.y,
            batch_size=workload.batch,
            epochs=n,
            shuffle=True,
            verbose=0,
            callbacks=[timer],
        )
        return timer.times

    return Runner(epoch_times)
