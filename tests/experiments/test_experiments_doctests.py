"""The docstring examples of the runner (and the grid and cell modules it re-exports), report and bench modules run
as written."""

import doctest

import pytest

from oblivio.experiments import bench, cell, grid, report, runner


@pytest.mark.parametrize("module", [runner, grid, cell, report, bench], ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
