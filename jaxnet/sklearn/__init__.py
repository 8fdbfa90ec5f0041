"""scikit-learn estimators trained by jaxnet (needs ``pip install jaxnet-classic[sklearn]``).

- :class:`MLPClassifier`, :class:`MLPRegressor`: drop-ins for ``sklearn.neural_network``'s.
- :class:`NeuralNetClassifier`, :class:`NeuralNetRegressor`: any jaxnet model as an estimator.
- :class:`GridSearchCV`, :class:`RandomizedSearchCV`: scikit-learn's searches, with every
  (candidate x fold) of an MLP grid trained as one compiled program per structural group.

How an estimator's parameters become what is trained (model, loss, penalty, an optimizer whose
numeric hyper-parameters may be arrays) is :mod:`jaxnet.sklearn._fitting`'s ``Training``.
"""

from jaxnet.sklearn.mlp import MLPClassifier, MLPRegressor
from jaxnet.sklearn.neural_net import NeuralNetClassifier, NeuralNetRegressor
from jaxnet.sklearn.search import GridSearchCV, RandomizedSearchCV

__all__ = [
    "GridSearchCV",
    "MLPClassifier",
    "MLPRegressor",
    "NeuralNetClassifier",
    "NeuralNetRegressor",
    "RandomizedSearchCV",
]
