"""Forget requests -> exact index splits (SPEC §2).

A scenario is reproducible from ``(dataset, spec, seed)`` and records the exact sample ids it chose. Specs are
dataclasses (or strings for the CLI):

==================  ===========================================  =====================================
string              dataclass                                    forgets
==================  ===========================================  =====================================
``class-subset:3:100``  ``ClassSubset(cls=3, count=100)``        100 random training samples of class 3
``class:3``         ``WholeClass(cls=3)``                        every training sample of class 3
``random:0.1``      ``RandomSamples(amount=0.1)``                10% of the training set (or a count)
``group:4,7``       ``Groups(groups=(4, 7))``                    every sample of groups 4 and 7
``group-frac:0.02`` ``Groups(fraction=0.02)``                    2% of the groups, drawn at random
``group-frac:0.02:low`` ``Groups(fraction=0.02, toward="low")``  2% of the groups, weighted toward a low attribute
``indices:FILE``    ``IndicesFile(path=FILE)``                   the sample ids listed in FILE
==================  ===========================================  =====================================

Invalid requests (unknown class, count larger than the class, out-of-range or duplicate ids, empty or
whole-dataset forget sets) raise :class:`ScenarioError` with the reason and the fix.

The package is split by job: :mod:`.specs` (the request dataclasses, their strings, :class:`ScenarioError`),
:mod:`.ids` (reading and checking a user's sample ids) and :mod:`.splits` (resolving a request into index splits);
every name is importable from ``oblivio.scenarios``.
"""

from .ids import check_ids_known, read_indices_file, validate_ids
from .specs import (
    ClassSubset,
    Groups,
    Indices,
    IndicesFile,
    RandomSamples,
    ScenarioError,
    ScenarioSpec,
    WholeClass,
    parse_scenario,
    spec_to_dict,
    spec_to_string,
)
from .splits import (
    ForgetSplit,
    UnlearningSplits,
    attribute_weights,
    make_forget_split,
    make_unlearning_splits,
    resolve_class,
    split_test,
)

__all__ = [
    "attribute_weights",
    "ClassSubset",
    "ForgetSplit",
    "Groups",
    "Indices",
    "IndicesFile",
    "RandomSamples",
    "ScenarioError",
    "ScenarioSpec",
    "UnlearningSplits",
    "WholeClass",
    "check_ids_known",
    "make_forget_split",
    "make_unlearning_splits",
    "parse_scenario",
    "read_indices_file",
    "resolve_class",
    "spec_to_dict",
    "spec_to_string",
    "split_test",
    "validate_ids",
]
