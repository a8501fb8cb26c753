"""Fuzzing request files: any content gives a valid request or a ScenarioError, never a crash or a partial write."""

from __future__ import annotations

import io
import json
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oblivio.scenarios import ScenarioError

_ints = st.integers(min_value=-5, max_value=2000)
_json_values = st.recursive(
    st.none() | st.booleans() | _ints | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.sampled_from(["ids", "indices", "x"]), inner, max_size=2)
    ),
    max_leaves=12,
)


def _npy_bytes(values: list[int], dtype: str) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(values).astype(dtype), allow_pickle=False)
    return buf.getvalue()


_contents = st.one_of(
    st.tuples(st.sampled_from([".txt", ".csv", ".json", ".npy", ""]), st.binary(max_size=200)),
    st.tuples(
        st.sampled_from([".txt", ".csv", ""]),
        st.lists(st.one_of(_ints.map(str), st.text(string.printable, max_size=8)), max_size=12).map(
            lambda lines: "\n".join(lines).encode()
        ),
    ),
    st.tuples(st.just(".json"), _json_values.map(lambda v: json.dumps(v).encode())),
    st.tuples(
        st.just(".npy"),
        st.builds(
            _npy_bytes, st.lists(_ints, max_size=10), st.sampled_from(["int64", "int8", "uint16", "float32", "bool"])
        ),
    ),
    st.tuples(st.just(".npy"), st.binary(max_size=60).map(lambda b: b"\x93NUMPY\x01\x00" + b)),
)


@pytest.fixture(scope="module")
def fuzz_service(tiny_experiment, tmp_path_factory):
    from oblivio.ledger import DeletionService

    svc = DeletionService(tmp_path_factory.mktemp("fuzz-ledger"), experiment=tiny_experiment, method="test-ledger-sgd")
    yield svc
    svc.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=_contents)
def test_request_files_never_crash(fuzz_service, tmp_path, content):
    suffix, data = content
    path = tmp_path / f"request{suffix}"
    path.write_bytes(data)
    before = fuzz_service.list_requests()
    try:
        record = fuzz_service.add_request(path, requester="fuzz")
    except ScenarioError as exc:
        assert str(exc)  # a message that says why
        assert fuzz_service.list_requests() == before  # nothing written
        return
    after = fuzz_service.list_requests()
    assert after[:-1] == before and after[-1] == record  # exactly one row, complete
    assert record.status in ("pending", "rejected")
    assert list(record.sample_ids) == sorted(set(record.sample_ids))
    assert set(record.sample_ids) <= set(fuzz_service.train_set.ids.tolist())
