import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from jaxnet import metrics

K = jax.random.split(jax.random.key(7), 4)


def test_accuracy_sparse_and_one_hot_match_sklearn():
    logits = jax.random.normal(K[0], (100, 4))
    labels = jax.random.randint(K[1], (100,), 0, 4)
    expected = skm.accuracy_score(np.asarray(labels), np.asarray(logits).argmax(1))
    np.testing.assert_allclose(metrics.accuracy(logits, labels), expected)
    np.testing.assert_allclose(metrics.accuracy(logits, jax.nn.one_hot(labels, 4)), expected)


def test_binary_and_multilabel_accuracies_match_sklearn():
    logits = jax.random.normal(K[0], (100, 5))
    targets = (jax.random.uniform(K[1], (100, 5)) > 0.5).astype(jnp.float32)
    predicted = np.asarray(jax.nn.sigmoid(logits) > 0.7)
    t = np.asarray(targets).astype(bool)
    np.testing.assert_allclose(
        metrics.binary_accuracy(logits, targets, threshold=0.7),
        1 - skm.hamming_loss(t, predicted),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        metrics.exact_match_accuracy(logits, targets, threshold=0.7),
        skm.accuracy_score(t, predicted),
        rtol=1e-6,
    )
    probs = jax.nn.sigmoid(logits)
    np.testing.assert_allclose(
        metrics.binary_accuracy(probs, targets, from_logits=False),
        metrics.binary_accuracy(logits, targets),
    )


def test_regression_metrics_match_sklearn():
    pred = jax.random.normal(K[2], (50, 2))
    target = pred + 0.5 * jax.random.normal(K[3], (50, 2))
    p, t = np.asarray(pred), np.asarray(target)
    np.testing.assert_allclose(metrics.mae(pred, target), skm.mean_absolute_error(t, p), rtol=1e-6)
    np.testing.assert_allclose(
        metrics.rmse(pred, target), np.sqrt(skm.mean_squared_error(t, p)), rtol=1e-6
    )
    np.testing.assert_allclose(metrics.r2(pred, target), skm.r2_score(t, p), rtol=1e-5)


def test_accuracy_rejects_wrong_label_shape():
    with pytest.raises(ValueError, match="accuracy"):
        metrics.accuracy(jnp.zeros((4, 3)), jnp.zeros((5,), jnp.int32))


def test_direction_reads_the_metric_name_and_refuses_unknown_ones():
    from jaxnet.errors import ConfigError

    for name in ("test_loss", "val_loss", "test_rmse", "val_mae", "mean_squared_error"):
        assert metrics.direction(name) == "min", name
    for name in ("test_accuracy", "val_hamming_accuracy", "exact_match", "r2", "val_auc"):
        assert metrics.direction(name) == "max", name
    assert metrics.direction("score", default="max") == "max"
    with pytest.raises(ConfigError, match="'score' should go up or down"):
        metrics.direction("score")
    assert metrics.is_better(0.5, 0.6, "min") and not metrics.is_better(0.59, 0.6, "min", 0.02)
    assert metrics.is_better(0.7, 0.6, "max") and not metrics.is_better(float("nan"), 1.0, "max")
