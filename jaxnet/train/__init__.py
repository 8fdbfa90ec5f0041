"""Training: pure steps, fused epochs, and the ``fit`` host loop."""

from jaxnet.train.callbacks import Callback, PrintProgress
from jaxnet.train.early_stopping import EarlyStopping
from jaxnet.train.evaluate import evaluate, make_evaluate, make_predict, predict
from jaxnet.train.fit import History, fit
from jaxnet.train.logging import CSVLogger, JSONLinesLogger, ProgressBar, TensorBoardLogger
from jaxnet.train.many import ManyResult, fit_many, model_slice
from jaxnet.train.per_example import clipped_mean_gradient, per_example_gradients
from jaxnet.train.step import (
    TrainState,
    create_train_state,
    make_epoch,
    make_loss,
    make_train_step,
    shuffle_key,
    step_key,
)

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "JSONLinesLogger",
    "ManyResult",
    "ProgressBar",
    "clipped_mean_gradient",
    "fit_many",
    "model_slice",
    "per_example_gradients",
    "History",
    "PrintProgress",
    "TensorBoardLogger",
    "TrainState",
    "create_train_state",
    "evaluate",
    "fit",
    "make_epoch",
    "make_evaluate",
    "make_loss",
    "make_predict",
    "make_train_step",
    "predict",
    "shuffle_key",
    "step_key",
]
