"""oblivio: aligned machine unlearning for PyTorch image classifiers."""

from __future__ import annotations

__version__ = "0.1.0"
