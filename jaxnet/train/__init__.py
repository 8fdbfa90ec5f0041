"""Training: pure steps, fused epochs, the ``fit`` host loop and the callbacks it runs.

- steps and epochs: :func:`make_train_step`, :func:`make_epoch`, :class:`TrainState`
  (:mod:`jaxnet.train.step`, which also holds the key derivation ``step_key``/``shuffle_key``);
- the loop: :func:`fit`, :func:`fit_many` (many models at once), :func:`evaluate`, :func:`predict`;
- callbacks (:mod:`jaxnet.train.callbacks`'s protocol): :class:`EarlyStopping`,
  :class:`ReduceLROnPlateau`, :class:`Checkpoint`, progress and loggers;
- learning-rate range tests: :func:`lr_find` (many rates at once), :func:`lr_sweep` (one run);
- gradients per example: :func:`per_example_gradients`, :func:`clipped_mean_gradient`.
"""

from jaxnet.train.callbacks import Callback, Loop, PrintProgress
from jaxnet.train.checkpointing import Checkpoint
from jaxnet.train.early_stopping import EarlyStopping
from jaxnet.train.evaluate import evaluate, make_evaluate, make_predict, predict
from jaxnet.train.fit import History, fit
from jaxnet.train.logging import CSVLogger, JSONLinesLogger, ProgressBar, TensorBoardLogger
from jaxnet.train.lr_find import LRFinding, LRSweep, lr_find, lr_sweep
from jaxnet.train.many import ManyResult, fit_many, model_slice
from jaxnet.train.per_example import clipped_mean_gradient, per_example_gradients
from jaxnet.train.plateau import ReduceLROnPlateau
from jaxnet.train.preemption import Preempted
from jaxnet.train.step import TrainState, create_train_state, make_epoch, make_train_step

__all__ = [
    # steps and epochs
    "TrainState",
    "create_train_state",
    "make_train_step",
    "make_epoch",
    # the loop
    "fit",
    "History",
    "fit_many",
    "ManyResult",
    "model_slice",
    "evaluate",
    "make_evaluate",
    "predict",
    "make_predict",
    # callbacks
    "Callback",
    "Loop",
    "Checkpoint",
    "EarlyStopping",
    "ReduceLROnPlateau",
    "PrintProgress",
    "Preempted",
    "ProgressBar",
    "CSVLogger",
    "JSONLinesLogger",
    "TensorBoardLogger",
    # learning-rate range tests
    "lr_find",
    "lr_sweep",
    "LRFinding",
    "LRSweep",
    # gradients per example
    "per_example_gradients",
    "clipped_mean_gradient",
]
