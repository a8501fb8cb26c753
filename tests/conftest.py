"""Shared fixtures: tiny real data (sklearn digits) and small models, CPU only, single-threaded.

Convention: methods that a test registers for itself are named "test-..."; registry-driven suites skip them.
"""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("OBLIVIO_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def digits():
    from oblivio.data import load_dataset

    return load_dataset("digits")


@pytest.fixture()
def tmp_store(tmp_path):
    return tmp_path / "store"
