"""The docstring examples of the runner (and the grid and cell modules it re-exports), report (and the table module
it re-exports), analyses and bench modules run as written."""

import doctest

import pytest

from oblivio.experiments import analyses, backends, bench, bench_cost, cell, grid, labels, report, runner, table


@pytest.mark.parametrize(
    "module",
    [runner, grid, cell, report, table, analyses, bench, labels, backends, bench_cost],
    ids=lambda m: m.__name__,
)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
