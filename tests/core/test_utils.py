import json
import math

import numpy as np
import torch

from oblivio.utils import json_safe


class Opaque:
    def __repr__(self):
        return "<opaque>"

    def __str__(self):
        return "opaque"


def test_json_safe_nulls_non_finite_and_falls_back():
    row = {"a": math.nan, "b": [1.5, math.inf, (2, -math.inf)], 3: np.float64(0.25), "t": torch.tensor([1, 2]),
           "o": Opaque()}
    out = json_safe(row)
    assert out == {"a": None, "b": [1.5, None, [2, None]], "3": 0.25, "t": [1, 2], "o": "opaque"}
    assert json_safe(row, fallback=repr)["o"] == "<opaque>"
    json.dumps(out, allow_nan=False)  # strict JSON
