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
    {1, 2}, frozenset({3}), 1 + 2j, b"\x00", range(1, 9, 2), ..., [1, ...]])
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


def test_object_arrays_roundtrip_element_by_element():
    """Data 8 regression: make_array(max, np.average, ...) and mixed Table columns are
    object arrays; they cross element by element, each element strictly encoded."""
    a = np.empty((2, 2), dtype=object)
    a[0, 0], a[0, 1], a[1, 0], a[1, 1] = 1, "a", None, [1, 2]
    out = roundtrip(a)
    assert out.dtype == object and out.shape == (2, 2)
    assert out.tolist() == [[1, "a"], [None, [1, 2]]] and type(out[1, 1]) is list


def test_object_array_wire_of_the_wrong_size_is_rejected():
    with pytest.raises(ValueError):
        Decoder().dec({"t": "ndarray_obj", "shape": [3], "v": [1, 2]})


def test_datascience_table_with_object_column_roundtrips():
    ds = pytest.importorskip("datascience", reason="datascience is not installed here")
    t = ds.Table().with_columns("n", ds.make_array(1, 2, 3),
                                "mixed", np.array([1, "a", None], dtype=object),
                                "s", ds.make_array("x", "y", "z"))
    out = roundtrip(t)
    assert type(out) is ds.Table and out.labels == t.labels
    assert out.column("mixed").tolist() == [1, "a", None]
    assert str(out) == str(t)
