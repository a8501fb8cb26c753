"""The docstring examples of the facade, adapters, torch-data intake (in memory, streamed) and progress lines run."""

import doctest
import importlib

import pytest

MODULES = [
    "oblivio.api",
    "oblivio.models.adapters",
    "oblivio.data.torch_data",
    "oblivio.data.stream",
    "oblivio.data.stream_intake",
    "oblivio.data",
    "oblivio.data.overlap",
    "oblivio.models.base",
    "oblivio.utils",
    "oblivio.registry",
    "oblivio.training.loop",
    "oblivio.training.progress",
    "oblivio.training.passes",
    "oblivio.training.functions",
    "oblivio.methods.base",
    "oblivio.methods.tmu.twin",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
