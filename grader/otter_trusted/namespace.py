"""The namespace tests run in on the trusted side: names fetched from the kernel as data.

`LazyGlobals` is a dict subclass whose __missing__ asks the kernel for a name.  Because
it is not an exact dict, CPython looks names up with __getitem__ for LOAD_NAME and
LOAD_GLOBAL alike, so names inside comprehensions and lambdas, and student names that
shadow builtins (`max = 6`), are fetched too; undefined names fall through to the
(trusted) builtins.  doctest.DocTest does `globs.copy()`, so copy() keeps the class.
"""
import builtins
import importlib
import os
import sys
import types

from .codec import Decoder, Encoder, Refused
from .kernel import CellTimeout, KernelDied
from .policy import ALLOWED_MODULES, PURE_BUILTINS, NotPlainData, StudentError, \
    UnsupportedInTest, exception_for


class NotAllowed(Refused):
    """A module/class from a library outside policy.ALLOWED_MODULES."""


class LazyGlobals(dict):
    def __init__(self, fetcher, *args):
        super().__init__(*args)
        self._fetcher = fetcher

    def __missing__(self, name):
        try:
            value = self._fetcher.fetch(name)  # KeyError when the kernel does not define it
        except KeyError:
            raise
        except Exception as e:  # keep our frames out of the feedback's traceback
            raise e.with_traceback(None) from None
        self[name] = value
        return value

    def copy(self):
        return LazyGlobals(self._fetcher, self)


class StudentFunction:
    """Stands for a callable that lives in the kernel; calling it runs it there."""

    __slots__ = ("_fetcher", "_id", "__name__")

    def __init__(self, fetcher, fn_id, name):
        self._fetcher, self._id, self.__name__ = fetcher, fn_id, name

    def __call__(self, *args, **kwargs):
        try:
            return self._fetcher.call(self, args, kwargs)
        except Exception as e:  # keep our frames out of the feedback's traceback
            raise e.with_traceback(None) from None

    def __repr__(self):
        return f"<function {self.__name__}>"


class Fetcher:
    """Fetches names for one check point (the kernel state at that point) and records
    flags (evidence about the submission) and warnings (tests we cannot fully support)."""

    def __init__(self, session, report, timeout=None):
        self.session, self.report, self.timeout = session, report, timeout
        self.cache, self.undefined = {}, set()
        self.decoder = Decoder(self._decode_other)
        self.encoder = Encoder(self._encode_other)

    def fetch(self, name):
        if name.startswith("__") or name in self.undefined:
            raise KeyError(name)
        if name not in self.cache:
            try:
                reply = self.session.request({"op": "get", "name": name}, timeout=self.timeout)
            except (KernelDied, CellTimeout, ValueError, SyntaxError):
                reply = {"ok": False}
            if not reply.get("ok"):
                self.undefined.add(name)
                raise KeyError(name)
            self.cache[name] = self._decode(reply.get("value"), f"`{name}`")
        return self.cache[name]

    def _decode(self, value, what):
        try:
            return self.decoder.dec(value)
        except NotAllowed as r:
            # A library the grader does not load (e.g. `os`): the test's problem, not
            # evidence about the student, so a warning rather than a flag.
            msg = f"{what} is {r.type_name}, which the grader does not load"
            self.report.warn(msg)
            raise NotPlainData(msg) from None
        except Refused as r:
            why = "" if r.why == "not plain data" else f" ({r.why})"
            msg = f"{what} is an object of type {r.type_name}, which cannot be checked{why}"
            self.report.flag(msg)
            raise NotPlainData(msg) from None
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            msg = f"{what} came back from the kernel as malformed data ({type(e).__name__})"
            self.report.flag(msg)
            raise NotPlainData(msg) from None

    def call(self, fn, args, kwargs):
        try:
            req = {"op": "call", "fn": fn._id, "args": [self.encoder.enc(a) for a in args],
                   "kwargs": [[str(k), self.encoder.enc(v)] for k, v in kwargs.items()]}
        except Refused as r:
            self.report.warn(f"a test passes an object of type {r.type_name} to student "
                             f"function {fn.__name__}; only plain data can be passed")
            raise UnsupportedInTest(f"cannot pass an object of type {r.type_name} to "
                                    f"{fn.__name__}() (only plain data crosses)") from None
        try:
            reply = self.session.request(req, timeout=self.timeout)
        except CellTimeout:
            raise TimeoutError(f"{fn.__name__}() did not return in time") from None
        except (KernelDied, ValueError, SyntaxError):
            raise StudentError(f"{fn.__name__}() could not be run") from None
        printed = reply.get("stdout")
        if type(printed) is str and printed:
            # What the function printed, for doctest's captured stdout (as in otter).
            sys.stdout.write(printed)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise exception_for(str(err.get("type")), str(err.get("msg")))
        return self._decode(reply.get("value"), f"the result of {fn.__name__}(...)")

    def _decode_other(self, o):
        tag = o["t"]
        if tag == "fn":
            return StudentFunction(self, int(o["id"]), str(o.get("name", "function"))[:100])
        if tag == "builtin" and o.get("name") in PURE_BUILTINS:
            return getattr(builtins, o["name"])
        if tag in ("module", "class"):
            return _library_object(o)
        raise Refused(str(o.get("name", tag))[:100])

    def _encode_other(self, x):
        if type(x) is StudentFunction and x._fetcher is self:
            return {"t": "fn", "id": x._id}
        for name in PURE_BUILTINS:
            if getattr(builtins, name) is x:
                return {"t": "builtin", "name": name}
        module = getattr(x, "__module__", None) if isinstance(x, type) else None
        if type(x) is types.ModuleType and x.__name__.split(".")[0] in ALLOWED_MODULES:
            return {"t": "module", "name": x.__name__}
        if type(module) is str and module.split(".")[0] in ALLOWED_MODULES:
            return {"t": "class", "module": module, "qualname": x.__qualname__}
        mod, qualname = getattr(x, "__module__", None), getattr(x, "__qualname__", None)
        if type(mod) is str and type(qualname) is str and _library_function([mod, qualname]) is x:
            return {"t": "libfn", "module": mod, "qualname": qualname}
        return None

    def kernel_printoptions(self):
        try:
            reply = self.session.request({"op": "printopts"}, timeout=self.timeout)
            return self.decoder.dec(reply.get("value")) if reply.get("ok") else None
        except Exception:
            return None

    def seed_kernel(self, seed):
        try:
            self.session.request({"op": "seed", "seed": seed}, timeout=self.timeout)
        except Exception:
            pass


def _library_function(lib):
    """The trusted side's library function named [module, qualname] (e.g. numpy's
    `average`), or None.  Used only to pass a test's own library function into a student
    function by name (the kernel imports its own); a callable fetched from the kernel is
    always a proxy, so the student never picks code that runs on the trusted side."""
    if type(lib) is not list or len(lib) != 2 or not all(type(p) is str for p in lib):
        return None
    module, qualname = lib
    if module.split(".")[0] not in ALLOWED_MODULES:
        return None
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            if part.startswith("_") or not part.isidentifier():
                return None
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        return None
    if isinstance(obj, type) or type(obj) is types.ModuleType or not callable(obj):
        return None
    return obj


def _library_object(o):
    """A module or class from an allow-listed library, imported on the trusted side."""
    name = str(o.get("name") or o.get("module"))
    if name.split(".")[0] not in ALLOWED_MODULES:
        raise NotAllowed(("module " if o["t"] == "module" else "a class from ") + name[:100])
    if name.split(".")[0] == "matplotlib":
        os.environ.setdefault("MPLBACKEND", "Agg")  # never a GUI backend here
    try:
        obj = importlib.import_module(name)
        if o["t"] == "class":
            for part in str(o["qualname"]).split("."):
                if part.startswith("_"):
                    raise AttributeError(part)
                obj = getattr(obj, part)
            if not isinstance(obj, type):
                raise AttributeError(o["qualname"])
    except (ImportError, AttributeError):
        raise NotAllowed(name[:100] + " (not installed for the grader)") from None
    return obj
