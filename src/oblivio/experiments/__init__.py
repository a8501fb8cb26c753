"""Experiment configs and presets, the checkpoint store, and the pipeline."""

from .config import PRESETS, ExperimentConfig, get_preset
from .pipeline import Experiment
from .store import CheckpointStore, default_store_root

__all__ = ["PRESETS", "CheckpointStore", "Experiment", "ExperimentConfig", "default_store_root", "get_preset"]
