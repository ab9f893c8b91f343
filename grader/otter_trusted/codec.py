"""Plain-data codec shared by the trusted side and the kernel.

This module is imported by the trusted evaluator AND its source text is sent into the
student's kernel, so it must stay self-contained (stdlib only; numpy/pandas/datascience
are looked up in sys.modules, never imported for encoding).

Encoding is strict: a value is plain data only if `type(x) is T` for an allowed T, so
subclasses and objects overriding __eq__/__repr__/__bool__/__float__/__reduce__ are
refused rather than converted.  The kernel-side encoder is a courtesy (the kernel can
send anything it likes); integrity rests on `decode`, which builds values from JSON
without calling any code the kernel chose.

Wire form: None/bool/int/str and finite floats are JSON scalars, lists are JSON arrays,
everything else is an object tagged by "t".
"""
import base64
import math
import re
import sys

MAX_DEPTH = 64
MAX_NODES = 2_000_000
_DTYPE_RE = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|c(8|16)|[mM]8(\[[A-Za-z0-9]+\])?)$")
_PD_DTYPES = {"object", "str", "string", "bool", "boolean", "category",
              "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float32", "float64", "complex128", "datetime64[ns]", "timedelta64[ns]",
              "Int64", "Float64"}


class Refused(Exception):
    """A value that is not plain data; `type_name` names the offending type."""

    def __init__(self, type_name, why="not plain data"):
        super().__init__(type_name, why)
        self.type_name = type_name
        self.why = why


def type_name(x):
    return getattr(type(x), "__qualname__", "?")


class Encoder:
    """Strict encoder. `other` is a hook for callables/modules (returns a tag or None)."""

    def __init__(self, other=None):
        self.other = other
        self.nodes = 0

    def enc(self, x, depth=0):
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise Refused(type_name(x), "too deeply nested or too large")
        t = type(x)
        if x is None or t is bool or t is int or t is str:
            return x
        if t is float:
            return x if math.isfinite(x) else {"t": "float", "v": repr(x)}
        if t is list:
            return [self.enc(v, depth + 1) for v in x]
        if t is tuple or t is set or t is frozenset:
            return {"t": t.__name__, "v": [self.enc(v, depth + 1) for v in x]}
        if t is dict:
            return {"t": "dict", "v": [[self.enc(k, depth + 1), self.enc(v, depth + 1)]
                                       for k, v in x.items()]}
        if t is complex:
            return {"t": "complex", "v": [self.enc(x.real), self.enc(x.imag)]}
        if t is bytes:
            return {"t": "bytes", "b64": base64.b64encode(x).decode()}
        if t is range:
            return {"t": "range", "v": [x.start, x.stop, x.step]}
        if x is Ellipsis:  # the `...` placeholder of an unanswered question
            return {"t": "ellipsis"}
        tag = self._enc_library(x, t, depth)
        if tag is None and self.other is not None:
            tag = self.other(x)
        if tag is None:
            raise Refused(type_name(x))
        return tag

    def _enc_library(self, x, t, depth):
        np = sys.modules.get("numpy")
        if np is not None:
            if t is np.ndarray:
                return self._enc_array(np, x, depth)
            if t in _numpy_scalar_types(np):
                if t is np.str_:
                    return {"t": "npstr", "v": str.__str__(x)}
                if t is np.bytes_ or t is np.void or t is np.object_:
                    raise Refused(type_name(x))
                arr = np.asarray(x).reshape(1)
                return {"t": "npscalar", "dtype": arr.dtype.str,
                        "b64": base64.b64encode(arr.tobytes()).decode()}
        pd = sys.modules.get("pandas")
        if pd is not None and (t is pd.DataFrame or t is pd.Series):
            return self._enc_pandas(pd, x, t, depth)
        ds = sys.modules.get("datascience")
        if ds is not None and t is getattr(ds, "Table", None):
            return {"t": "table", "labels": [self.enc(lbl, depth + 1) for lbl in x.labels],
                    "columns": [self.enc(x.column(i), depth + 1)
                                for i in range(x.num_columns)]}
        return None

    def _enc_array(self, np, a, depth):
        kind = a.dtype.kind
        shape = [int(n) for n in a.shape]
        if kind in "biufcmM" and _DTYPE_RE.match(a.dtype.str):
            data = np.ascontiguousarray(a).tobytes()
            return {"t": "ndarray", "dtype": a.dtype.str, "shape": shape,
                    "b64": base64.b64encode(data).decode()}
        if kind == "U":
            # Fixed-width unicode is huge as raw bytes: send the strings as a list.
            flat = [str.__str__(s) for s in a.reshape(-1).tolist()]
            return {"t": "ndarray_str", "shape": shape, "v": flat}
        if kind == "O":
            # Element by element, each strictly (e.g. make_array(max, np.average) or a
            # Table column of mixed values): never pickled, never converted.
            return {"t": "ndarray_obj", "shape": shape,
                    "v": [self.enc(v, depth + 1) for v in a.reshape(-1).tolist()]}
        raise Refused("ndarray of dtype " + a.dtype.str, "arrays of this dtype cannot be checked")

    def _enc_pandas(self, pd, x, t, depth):
        if t is pd.DataFrame:
            return {"t": "dataframe", "index": self._enc_index(pd, x.index, depth),
                    "columns": [[self.enc(c, depth + 1), self._enc_series(pd, x[c], depth)]
                                for c in x.columns]}
        return self._enc_series(pd, x, depth)

    def _enc_series(self, pd, s, depth):
        dtype = str(s.dtype)
        if dtype not in _PD_DTYPES:
            raise Refused("Series of dtype " + dtype)
        values = s.to_numpy()
        if values.dtype.kind in "OUS" or dtype in ("category", "Int64", "Float64", "boolean"):
            values = [None if v is pd.NA else v for v in values.tolist()]
        return {"t": "series", "dtype": dtype, "name": self.enc(s.name, depth + 1),
                "values": self.enc(values, depth + 1),
                "index": self._enc_index(pd, s.index, depth)}

    def _enc_index(self, pd, idx, depth):
        if type(idx) is pd.RangeIndex:
            return {"t": "rangeindex", "v": [idx.start, idx.stop, idx.step],
                    "name": self.enc(idx.name, depth + 1)}
        return {"t": "index", "v": self.enc(idx.tolist(), depth + 1),
                "name": self.enc(idx.name, depth + 1)}


def _numpy_scalar_types(np):
    return {v for v in np.sctypeDict.values() if getattr(v, "__module__", "") == "numpy"}


class Decoder:
    """Strict decoder: builds values from JSON only. `other` handles fn/ref/module tags."""

    def __init__(self, other=None):
        self.other = other

    def dec(self, o):
        t = type(o)
        if o is None or t is bool or t is int or t is str or t is float:
            return o
        if t is list:
            return [self.dec(v) for v in o]
        if t is not dict or type(o.get("t")) is not str:
            raise ValueError("malformed plain data")
        tag = o["t"]
        fn = getattr(self, "_dec_" + tag, None) if tag.isidentifier() else None
        if fn is not None:
            return fn(o)
        if tag == "refused":
            raise Refused(str(o.get("type")), str(o.get("why")))
        if self.other is not None:
            return self.other(o)
        raise ValueError("unknown tag " + tag[:40])

    def _dec_float(self, o):
        if o["v"] not in ("nan", "inf", "-inf"):
            raise ValueError("bad float")
        return float(o["v"])

    def _dec_tuple(self, o):
        return tuple(self.dec(v) for v in o["v"])

    def _dec_set(self, o):
        return set(self.dec(v) for v in o["v"])

    def _dec_frozenset(self, o):
        return frozenset(self.dec(v) for v in o["v"])

    def _dec_dict(self, o):
        return {self.dec(k): self.dec(v) for k, v in o["v"]}

    def _dec_complex(self, o):
        re_, im = (self.dec(v) for v in o["v"])
        return complex(float(re_), float(im))

    def _dec_bytes(self, o):
        return base64.b64decode(o["b64"], validate=True)

    def _dec_ellipsis(self, o):
        return Ellipsis

    def _dec_range(self, o):
        return range(*[int(v) for v in o["v"]])

    def _dec_npstr(self, o):
        import numpy as np
        return np.str_(str(o["v"]))

    def _dec_npscalar(self, o):
        return self._dec_ndarray(dict(o, shape=[1]))[0]

    def _dec_ndarray(self, o):
        import numpy as np
        if not _DTYPE_RE.match(str(o["dtype"])):
            raise ValueError("dtype not allowed")
        shape = tuple(int(n) for n in o["shape"])
        raw = base64.b64decode(o["b64"], validate=True)
        return np.frombuffer(raw, dtype=np.dtype(o["dtype"])).reshape(shape).copy()

    def _dec_ndarray_str(self, o):
        import numpy as np
        values = [str(v) for v in o["v"] if type(v) is str]
        if len(values) != len(o["v"]):
            raise ValueError("non-string in string array")
        return np.array(values, dtype=str).reshape(tuple(int(n) for n in o["shape"]))

    def _dec_ndarray_obj(self, o):
        import numpy as np
        shape = tuple(int(n) for n in o["shape"])
        values = [self.dec(v) for v in o["v"]]
        size = 1
        for n in shape:
            size *= n
        if size != len(values):
            raise ValueError("object array of the wrong size")
        flat = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):  # item assignment: a list stays one element
            flat[i] = v
        return flat.reshape(shape)

    def _dec_rangeindex(self, o):
        import pandas as pd
        return pd.RangeIndex(*[int(v) for v in o["v"]], name=self.dec(o["name"]))

    def _dec_index(self, o):
        import pandas as pd
        return pd.Index(self.dec(o["v"]), name=self.dec(o["name"]))

    def _dec_series(self, o):
        import pandas as pd
        if o["dtype"] not in _PD_DTYPES:
            raise ValueError("pandas dtype not allowed")
        return pd.Series(self.dec(o["values"]), index=self.dec(o["index"]),
                         name=self.dec(o["name"]), dtype=o["dtype"])

    def _dec_dataframe(self, o):
        import pandas as pd
        cols = {self.dec(k): self.dec(s) for k, s in o["columns"]}
        return pd.DataFrame(cols, index=self.dec(o["index"]))

    def _dec_table(self, o):
        from datascience import Table
        labels = [str(self.dec(lbl)) for lbl in o["labels"]]
        table = Table()
        for label, col in zip(labels, o["columns"]):
            # In place: with_column copies the whole table for every column (a 57-column,
            # 8,546-row Data 8 table took 4.8 s that way, 0.1 s like this).
            table.append_column(label, self.dec(col))
        return table
