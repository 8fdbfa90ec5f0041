"""fit_many(data_seed=None): every model is the model fit trains with the same arguments."""

import jax
import numpy as np

import jaxnet
from jaxnet import optim
from jaxnet.train.many import fit_many, model_slice

MODEL = jaxnet.serial(
    jaxnet.Dense(16, kernel_init="he_normal"),
    jaxnet.activations.Relu(),
    jaxnet.Dropout(0.3),
    jaxnet.Dense(3),
)
LOSS = jaxnet.losses.sparse_categorical_cross_entropy


def test_each_model_of_fit_many_is_fit_with_the_same_arguments():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5)
    common = dict(epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                  metrics=[jaxnet.metrics.accuracy])  # fmt: skip
    result = fit_many(MODEL, LOSS, lambda learning_rate: optim.adam(learning_rate), x, y,
                      seeds=[3, 7], grid={"learning_rate": [1e-2, 3e-2]}, data_seed=None,
                      **common)  # fmt: skip
    for m in (0, 3):  # (lr 1e-2, seed 3) and (lr 3e-2, seed 7): each fit compiles, so two
        config = result.configs[m]
        ts, history = jaxnet.fit(MODEL, LOSS, optim.adam(config["learning_rate"]), x, y,
                                 seed=config["seed"], **common)  # fmt: skip
        one = model_slice(result.train_state, m)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
            one[:4],  # params, state, optimizer state, step
            ts[:4],
        )
        assert np.array_equal(jax.random.key_data(one.key), jax.random.key_data(ts.key))
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(result.history[name][:, m], history[name], rtol=1e-6)
