"""Kernel-side request handler (UNTRUSTED side).

Never imported by the trusted evaluator: its source, appended to codec.py's, is executed
in the student's kernel as the module `_otter_trusted_kernel`.  Student code can replace
or break anything here; that can only make fetches fail or return other plain data,
which is no more than the student could do by assigning different values.
Encoder, Decoder, Refused and type_name come from codec.py, which is prepended.
"""
import json
import sys
import types

_FUNCS = {}          # id -> student callable, so a proxy keeps calling the object it fetched
_PURE_BUILTINS = None  # filled by the trusted side via "setup"


def _user_ns():
    ip = sys.modules["IPython"].get_ipython()
    return ip.user_ns


def _other(x):
    """Tags for things that are not data: callables and modules."""
    t = type(x)
    if t is types.ModuleType:
        return {"t": "module", "name": x.__name__}
    if t is types.BuiltinFunctionType and getattr(x, "__self__", None) is sys.modules["builtins"]:
        if x.__name__ in (_PURE_BUILTINS or ()):
            return {"t": "builtin", "name": x.__name__}
    if isinstance(x, type):
        mod = getattr(x, "__module__", "")
        if mod not in ("__main__", "builtins") and mod.split(".")[0] != "__main__":
            return {"t": "class", "module": mod, "qualname": x.__qualname__}
        if mod == "builtins":
            return {"t": "builtin", "name": x.__name__}
        return None
    if t in (types.FunctionType, types.BuiltinFunctionType) or _is_numpy_function(x):
        key = len(_FUNCS) + 1
        _FUNCS[key] = x
        return {"t": "fn", "id": key, "name": getattr(x, "__name__", "function")}
    return None


def _is_numpy_function(x):
    """ufuncs and numpy 2's array-function dispatchers (np.average, np.mean...)."""
    np = sys.modules.get("numpy")
    if np is None:
        return False
    t = type(x)
    return t is np.ufunc or (t.__name__ == "_ArrayFunctionDispatcher"
                             and t.__module__.split(".")[0] == "numpy")


def _decode_other(o):
    if o["t"] == "fn":
        return _FUNCS[int(o["id"])]
    if o["t"] == "builtin":
        return getattr(sys.modules["builtins"], o["name"])
    if o["t"] == "libfn":
        import importlib
        obj = importlib.import_module(o["module"])
        for part in o["qualname"].split("."):
            obj = getattr(obj, part)
        return obj
    if o["t"] in ("module", "class"):
        import importlib
        mod = importlib.import_module(o.get("name") or o["module"])
        for part in o.get("qualname", "").split(".") if o["t"] == "class" else ():
            mod = getattr(mod, part)
        return mod
    raise ValueError("unknown tag")


def _encode(value):
    try:
        return Encoder(_other).enc(value)
    except Refused as r:
        return {"t": "refused", "type": r.type_name, "why": r.why}
    except RecursionError:
        return {"t": "refused", "type": type_name(value), "why": "too deeply nested"}


def _op_get(req):
    ns = _user_ns()
    if req["name"] not in ns:
        return {"ok": False, "undefined": True}
    return {"ok": True, "value": _encode(ns[req["name"]])}


def _op_call(req):
    dec = Decoder(_decode_other)
    fn = _FUNCS[int(req["fn"])]
    args = [dec.dec(a) for a in req["args"]]
    kwargs = {str(k): dec.dec(v) for k, v in req["kwargs"]}
    out = _CappedIO()
    try:
        with _redirect_stdout(out):
            result = fn(*args, **kwargs)
    except BaseException as e:  # SystemExit too: a student function must not end the kernel
        return {"ok": False, "error": {"type": type(e).__name__, "msg": str(e)[:2000]},
                "stdout": out.text()}
    return {"ok": True, "value": _encode(result), "stdout": out.text()}


_STDOUT_LIMIT = 1 << 20


class _CappedIO:
    """What a student function prints while a test calls it (otter's doctest would see
    it in the kernel); sent back so the trusted doctest sees the same output."""

    def __init__(self):
        self.parts, self.size = [], 0

    def write(self, s):
        s = str(s)
        if self.size < _STDOUT_LIMIT:
            self.parts.append(s[:_STDOUT_LIMIT - self.size])
        self.size += len(s)
        return len(s)

    def flush(self):
        pass

    def text(self):
        return "".join(self.parts)


class _redirect_stdout:
    def __init__(self, target):
        self.target = target

    def __enter__(self):
        self.saved = sys.stdout
        sys.stdout = self.target

    def __exit__(self, *exc):
        sys.stdout = self.saved


def _op_printopts(req):
    np = sys.modules.get("numpy")
    if np is None:
        return {"ok": True, "value": None}
    opts = {k: v for k, v in np.get_printoptions().items()
            if type(v) in (int, float, str, bool) or v is None}
    return {"ok": True, "value": _encode(opts)}


def _op_seed(req):
    import random
    random.seed(req["seed"])
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(req["seed"])
    return {"ok": True, "value": None}


def _op_setup(req):
    global _PURE_BUILTINS
    _PURE_BUILTINS = frozenset(req["pure_builtins"])
    return {"ok": True, "value": None}


def handle(request_json):
    req = json.loads(request_json)
    op = globals()["_op_" + req["op"]]
    return json.dumps(op(req), allow_nan=False)
