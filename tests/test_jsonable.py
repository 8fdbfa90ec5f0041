import json
import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jaxnet.jsonable import dumps, jsonable


def test_numbers_arrays_and_non_finite_values_become_strict_json():
    value = {
        "loss": np.float32(0.25),
        "nan": float("nan"),
        "inf": np.float64(np.inf),
        "grid": jnp.asarray([[1.0, np.nan], [np.inf, -2.0]]),
        "count": np.int64(3),
        "flags": np.asarray([True, False]),
        "path": Path("a") / "b",
        (1, 2): (np.float32(1.5), None),
    }
    plain = jsonable(value)
    assert plain == {
        "loss": 0.25,
        "nan": None,
        "inf": None,
        "grid": [[1.0, None], [None, -2.0]],
        "count": 3,
        "flags": [True, False],
        "path": str(Path("a") / "b"),
        "(1, 2)": [1.5, None],
    }
    text = dumps(value)
    assert json.loads(text) == plain  # a strict reader gets the same thing back
    assert "NaN" not in text and "Infinity" not in text
    assert isinstance(plain["count"], int) and not isinstance(plain["loss"], np.generic)
    assert math.isfinite(json.loads(dumps(np.float32(1e38)))) is True
