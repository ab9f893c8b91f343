"""The plain-data codec on its own (no kernel)."""
import json

import numpy as np
import pandas as pd
import pytest

from otter_trusted.codec import Decoder, Encoder, Refused


def roundtrip(x):
    return Decoder().dec(json.loads(json.dumps(Encoder().enc(x), allow_nan=False)))


@pytest.mark.parametrize("value", [
    None, True, 3, 2.5, float("inf"), "s", [1, [2]], (1, "a"), {1: "x", "k": (2,)},
    {1, 2}, frozenset({3}), 1 + 2j, b"\x00", range(1, 9, 2)])
def test_python_values_roundtrip_with_exact_types(value):
    out = roundtrip(value)
    assert out == value and type(out) is type(value)


def test_numpy_and_pandas_roundtrip():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert np.array_equal(roundtrip(a), a) and roundtrip(a).dtype == a.dtype
    assert roundtrip(np.array(["ab", "c"])).tolist() == ["ab", "c"]
    assert type(roundtrip(np.float64(1.5))) is np.float64
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert roundtrip(df).equals(df)


class Always:
    def __eq__(self, other):
        return True


class Sneaky(int):
    pass


@pytest.mark.parametrize("value", [Always(), Sneaky(1), [1, Always()], {"k": Sneaky(2)},
                                   np.array([Always()], dtype=object), (x for x in [])])
def test_non_plain_values_are_refused(value):
    with pytest.raises(Refused):
        Encoder().enc(value)


@pytest.mark.parametrize("wire", [
    {"t": "ndarray", "dtype": "O", "shape": [1], "b64": ""},
    {"t": "ndarray", "dtype": "|V8", "shape": [1], "b64": "AAAAAAAAAAA="},
    {"t": "nope"}, {"x": 1}, {"t": "__class__"},
    {"t": "series", "dtype": "object; import os", "values": [], "name": None,
     "index": {"t": "index", "v": [], "name": None}}])
def test_decoder_rejects_malformed_or_dangerous_data(wire):
    with pytest.raises((ValueError, KeyError, TypeError)):
        Decoder().dec(wire)


def test_refused_marker_raises():
    with pytest.raises(Refused):
        Decoder().dec({"t": "refused", "type": "Always", "why": "not plain data"})
