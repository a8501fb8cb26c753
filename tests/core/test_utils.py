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
    row = {
        "a": math.nan,
        "b": [1.5, math.inf, (2, -math.inf)],
        3: np.float64(0.25),
        "t": torch.tensor([1, 2]),
        "o": Opaque(),
    }
    out = json_safe(row)
    assert out == {"a": None, "b": [1.5, None, [2, None]], "3": 0.25, "t": [1, 2], "o": "opaque"}
    assert json_safe(row, fallback=repr)["o"] == "<opaque>"
    json.dumps(out, allow_nan=False)  # strict JSON


def test_git_source_state_names_uncommitted_edits(tmp_path):
    import subprocess

    from oblivio.utils import git_source_state

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
    assert git_source_state(tmp_path) == {"git_dirty": False, "git_diff_hash": None}
    (tmp_path / "a.py").write_text("x = 2\n")
    first = git_source_state(tmp_path)
    (tmp_path / "a.py").write_text("x = 3\n")
    second = git_source_state(tmp_path)
    assert first["git_dirty"] and second["git_dirty"]
    assert len(first["git_diff_hash"]) == 16 and first["git_diff_hash"] != second["git_diff_hash"]
    assert git_source_state(tmp_path / "missing-dir") == {"git_dirty": None, "git_diff_hash": None}
