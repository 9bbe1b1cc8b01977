"""The ``--passes`` grammar."""

from __future__ import annotations

import re

import pytest

from fpgac.passes.spec import PassCall, PassSpecError, parse_pass_spec


def test_parses_names_and_typed_options() -> None:
    assert parse_pass_spec("lowrank(macs=0.3), reap(keep=0.5, method=unify), quantize") == [
        PassCall("lowrank", {"macs": 0.3}),
        PassCall("reap", {"keep": 0.5, "method": "unify"}),
        PassCall("quantize", {}),
    ]
    (call,) = parse_pass_spec(" quantize( precision = 16, refit=false, n=-3, eps=1e-3, tag='a b' ) ")
    assert call.options == {"precision": 16, "refit": False, "n": -3, "eps": 0.001, "tag": "a b"}
    assert parse_pass_spec("") == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lowrank(macs)", "expected key=value"),
        ("a b", "expected ','"),
        ("a(", "missing ')'"),
        ("a,", "trailing ','"),
        ("a(x=1 y=2)", "between the options"),
        ("a(x=1,x=2)", "given twice"),
        ("(", "expected a pass name"),
        ("a(x=)", "has no value"),
        ("a#", "unexpected '#'"),
    ],
)
def test_bad_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(PassSpecError, match=re.escape(message)):
        parse_pass_spec(spec)
