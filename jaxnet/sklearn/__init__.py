"""scikit-learn estimators trained by jaxnet (needs ``pip install jaxnet-classic[sklearn]``).

- :class:`MLPClassifier`, :class:`MLPRegressor`: drop-ins for ``sklearn.neural_network``'s.
- :class:`NeuralNetClassifier`, :class:`NeuralNetRegressor`: any jaxnet model as an estimator.

How an estimator's parameters become what is trained (model, loss, penalty, an optimizer whose
numeric hyper-parameters may be arrays) is :mod:`jaxnet.sklearn._fitting`'s ``Training``.
"""

from jaxnet.sklearn.mlp import MLPClassifier, MLPRegressor
from jaxnet.sklearn.neural_net import NeuralNetClassifier, NeuralNetRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"]
