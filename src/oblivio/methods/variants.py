"""The library's named method variants (timm-style), each with the reason it exists.

A base method's defaults are its reference implementation's; every tuning of ours is registered here under its own
name (``register_variant``), so benches, config files and reports name it instead of passing hyper-parameter dicts.
Imported last by :mod:`oblivio.methods`, after every base method is registered.
"""

from __future__ import annotations

from .base import register_variant

# Add variants below, one call each: register_variant("base.what", "base", reason="why, measured on what", **defaults)

register_variant(
    "tmu.random-control", "tmu", hard_selection="random",
    reason="rate-matched random control (SPEC §6, issue 11): TMU's aligned step with the hard set drawn at random "
           "at the predictor's own count; δ alone cannot tell it from TMU, sample agreement can")

__all__: list[str] = []
