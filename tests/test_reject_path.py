"""The reject path is total: for any value a record can hold, its reject key, its stored JSON and
its reason are computed without raising, and the key is the same in every process."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.store.rejects import reject_json, reject_key, safe_reason
from tests.reliability.test_hostile_values import ItemsRaise, Opaque, nested

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

huge_ints = st.builds(lambda n, sign: sign * 10**n, st.integers(4_000, 20_000), st.sampled_from([1, -1]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), huge_ints, st.floats(), st.text(),
                    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),  # lone surrogates
                    st.binary(max_size=20), st.datetimes(), st.builds(Opaque), st.just(float("nan")))
keys = st.one_of(st.text(max_size=8), st.integers(), huge_ints, st.none(), st.floats(allow_nan=False),
                 st.tuples(st.integers(), st.text(max_size=3)), st.builds(Opaque))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(keys, inner, max_size=4),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3).map(ItemsRaise),
                            st.frozensets(st.integers(), max_size=3)),
    max_leaves=20)
deep = st.builds(nested, st.integers(1_000, 12_000), values, st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(values, deep))
def test_nothing_a_record_holds_makes_the_reject_path_raise(value):
    key = reject_key("s-x", value)
    assert key.startswith("s-x:") and len(key) == 44
    assert key == reject_key("s-x", value)  # deterministic within a process
    stored = reject_json(value)
    json.loads(stored)  # valid JSON, whatever the record held
    assert "\\u0000" not in stored and "\x00" not in stored  # PostgreSQL's jsonb takes neither
    stored.encode("utf-8")  # no lone surrogate reaches the database
    assert isinstance(safe_reason(value), str)


#: Values every path of the key meets: JSON, huge integers, too deep for JSON, keys that do not sort.
CORPUS = [
    {"event_id": "a", "metrics": {"n": 1}},
    {"n": 10**5000},
    {"k": {10**100_000: 1}},
    nested(5_000),
    nested(100_000, in_list=True),
    {1: "one", "1": "uno", None: 0, (1, "x"): 2},
    [frozenset({3, 1, 2}), {"a", "b"}, b"bytes", datetime(2024, 1, 1, tzinfo=timezone.utc)],
    {"x": float("nan"), "y": float("-inf"), "z": -0.0},
    "\udc80 lone surrogate",
]


def test_reject_keys_are_the_same_in_every_process():
    here = [reject_key("s-x", value) for value in CORPUS]
    script = ("import pickle, sys; sys.setrecursionlimit(1000)\n"
              "from etl.store.rejects import reject_key\n"
              "from tests.test_reject_path import CORPUS\n"
              "sys.stdout.buffer.write(pickle.dumps([reject_key('s-x', v) for v in CORPUS]))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert pickle.loads(out) == here
    assert len(set(here)) == len(here)


def test_an_opaque_object_and_items_that_raise_still_make_a_key_and_a_stored_record():
    for value in (Opaque(), ItemsRaise(a=1), {"x": Opaque()}, [ItemsRaise(b=2)]):
        assert reject_key("s-x", value) == reject_key("s-x", value)
        assert isinstance(json.loads(reject_json(value)), (dict, list))
