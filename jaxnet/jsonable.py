"""One rule for writing results as JSON: plain Python values, no NaN or infinity.

JSON has no NaN or infinity (``json.dumps`` would write ``NaN``, which strict readers reject), so
every non-finite float becomes ``null``; NumPy and JAX scalars and arrays become Python numbers and
lists. Logs, checkpoint manifests, diagnostics reports, study results and the CLI's files all go
through :func:`jsonable`.

>>> import numpy as np
>>> jsonable({"loss": np.float32(0.5), "val_loss": float("nan"), "w": np.arange(2)})
{'loss': 0.5, 'val_loss': None, 'w': [0, 1]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath

import numpy as np


def jsonable(value):
    """``value`` with NumPy/JAX numbers and arrays as Python ones and non-finite floats as ``None``.

    Mappings get string keys; tuples become lists; paths become strings.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # NumPy/JAX arrays and scalars
        return jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value, **kwargs) -> str:
    """``json.dumps(jsonable(value))``, refusing what JSON cannot hold (``allow_nan=False``)."""
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)
