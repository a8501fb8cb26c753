"""Fixtures for the TMU tests: the ``tiny`` experiment (sklearn digits, small-cnn width 8 / hidden 64)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tmu_exp(tmp_path_factory):
    from oblivio.experiments import Experiment

    return Experiment("tiny", store=tmp_path_factory.mktemp("tmu-store"), device="cpu", progress=False)


@pytest.fixture(scope="session")
def tmu_original(tmu_exp):
    return tmu_exp.original()


@pytest.fixture(scope="session")
def tmu_splits(tmu_exp):
    """forget = 10 training images of class 3; retain = the rest; holdout / test = halves of the test split."""
    return tmu_exp.unlearning_splits("class-subset:3:10", seed=0)
