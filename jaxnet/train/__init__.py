"""Training: pure steps, fused epochs, and the ``fit`` host loop."""

from jaxnet.train.callbacks import Callback, PrintProgress
from jaxnet.train.evaluate import evaluate, make_evaluate, make_predict, predict
from jaxnet.train.fit import History, fit
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
    "Callback",
    "History",
    "PrintProgress",
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
