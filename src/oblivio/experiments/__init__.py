"""Experiment configs and presets, the checkpoint store, the pipeline, the benchmark runner and its reports."""

from .bench import BenchSettings, list_benchmarks, run_benchmark
from .config import PRESETS, ExperimentConfig, get_preset
from .forget_quality_run import forget_quality_benchmark
from .pipeline import Experiment, TrainedModel
from .report import build_tables, write_report
from .runner import Cell, EvalOptions, Grid, MethodSpec, Runner, Seeds, read_results, run_grid
from .store import CheckpointStore, default_store_root

__all__ = [
    "PRESETS",
    "BenchSettings",
    "Cell",
    "CheckpointStore",
    "EvalOptions",
    "Experiment",
    "ExperimentConfig",
    "Grid",
    "MethodSpec",
    "Runner",
    "Seeds",
    "TrainedModel",
    "build_tables",
    "default_store_root",
    "forget_quality_benchmark",
    "get_preset",
    "list_benchmarks",
    "read_results",
    "run_benchmark",
    "run_grid",
    "write_report",
]
