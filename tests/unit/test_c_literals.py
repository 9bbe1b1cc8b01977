"""The weight headers' initializers: the vectorized formatter writes what plain Python formatting writes."""

from __future__ import annotations

import numpy as np
import pytest

from fpgac.backends.vitis import ccode
from fpgac.backends.vitis.ccode import c_int_array, int_literal, literal_rows


def _expected(values: list[int], ctype: str) -> str:
    """The initializer as the template wrote it before: ``batch(10)`` rows joined by ", "."""
    texts = [int_literal(v, ctype) for v in values]
    return "".join(f"    {', '.join(texts[i : i + 10])},\n" for i in range(0, len(texts), 10))


@pytest.mark.parametrize(
    ("ctype", "values"),
    [
        ("int16_t", [0]),
        ("int16_t", [-32768, 32767, -1, 0, 1, 9, 10, -10, 99, 100, -100, 12345, -23456]),
        ("int8_t", list(range(-128, 128))),
        ("uint16_t", [0, 65535, 1, 10, 100, 1000, 10000]),
        ("int", [-(2**16), 2**16 - 1, 5]),  # the table's ends
        ("int", [2**16, -(2**16) - 1, 7]),  # beyond the table: formatted one by one
        ("int32_t", [2**31 - 1, -(2**31)]),
        ("unsigned int", [0, 1, 2**32 - 1]),
        ("int64_t", [-(2**63), 2**63 - 1, 0]),
        ("uint64_t", [0, 2**64 - 1]),
    ],
)
def test_literals_match_python_formatting(ctype: str, values: list[int]) -> None:
    array = np.array(values, dtype=object if ctype == "uint64_t" else np.int64)
    assert "".join(literal_rows(c_int_array(array, ctype), ctype)) == _expected(values, ctype)


@pytest.mark.parametrize("size", [1, 9, 10, 11, 29, 30, 31])
def test_every_line_length_and_chunk_boundary(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ccode, "_CHUNK_ROWS", 2)  # chunks of 20 literals: sizes above cross boundaries
    values = np.random.default_rng(size).integers(-40000, 40000, size)
    chunks = list(literal_rows(values, "int32_t"))
    assert len(chunks) == -(-size // 20)
    assert "".join(chunks) == _expected(values.tolist(), "int32_t")


def test_c_int_array_keeps_values_in_the_types_width() -> None:
    array = c_int_array(np.array([[-3, 4]], np.int64), "int16_t")
    assert array.dtype == np.int16 and array.tolist() == [-3, 4]
    assert c_int_array([1, 2], "int").dtype == np.int64
