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
from .kernel import BadReply, CellTimeout, KernelDied
from .output import text_of
from .policy import ALLOWED_MODULES, IMPORTABLE_MODULES, PURE_BUILTINS, NotPlainData, \
    StudentError, UnsupportedInTest, checked_printoptions, exception_for

# What a student function may print back into a doctest (the honest helper's own cap).
STDOUT_LIMIT = 1 << 20


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
                reply = self._ask({"op": "get", "name": name}, f"`{name}`")
            except (KernelDied, CellTimeout):
                reply = {"ok": False}  # a dead or stuck kernel defines nothing more
            if not reply["ok"]:
                self.undefined.add(name)
                raise KeyError(name)
            self.cache[name] = self._decode(self._value(reply, f"`{name}`"), f"`{name}`")
        return self.cache[name]

    def _ask(self, req, what):
        """The kernel helper's reply to `req`. A reply that is not well-formed is
        evidence about the submission: flagged, and the case that asked fails."""
        try:
            reply = self.session.request(req, timeout=self.timeout)
        except BadReply as e:
            self.report.reply_bad()
            self._bad(what, str(e))
        self.report.reply_ok()
        return reply

    def _bad(self, what, why):
        self.report.flag(f"the kernel's answer for {what} was not a well-formed reply: {why}")
        raise NotPlainData(f"the kernel did not answer the grader for {what}") from None

    def _value(self, reply, what):
        if "value" not in reply:
            self._bad(what, "it has no value")
        return reply["value"]

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
        except Exception as e:  # noqa: BLE001 -- the decoder only builds data: any
            # error in it is data the honest encoder never sends.
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
        what = f"a call of {fn.__name__}()"
        try:
            reply = self._ask(req, what)
        except CellTimeout:
            raise TimeoutError(f"{fn.__name__}() did not return in time") from None
        except KernelDied:
            raise StudentError(f"{fn.__name__}() could not be run") from None
        printed = reply.get("stdout")
        if type(printed) is str and printed:
            # What the function printed, for doctest's captured stdout (as in otter).
            sys.stdout.write(printed[:STDOUT_LIMIT])
        if not reply["ok"]:
            err = reply.get("error")
            if type(err) is not dict:
                self._bad(what, "an error without its type and message")
            raise exception_for(text_of(err.get("type"), 100), text_of(err.get("msg"), 2000))
        return self._decode(self._value(reply, what), f"the result of {fn.__name__}(...)")

    def _decode_other(self, o):
        tag = o["t"]
        if tag == "fn":
            return StudentFunction(self, int(o["id"]), text_of(o.get("name", "function"), 100))
        if tag == "builtin" and o.get("name") in PURE_BUILTINS:
            return getattr(builtins, o["name"])
        if tag in ("module", "class"):
            return _library_object(o)
        raise Refused(text_of(o.get("name", tag), 100))

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
        """The kernel's numpy print options that pass policy.checked_printoptions; what
        does not is flagged and left out."""
        what = "numpy's print options"
        try:
            reply = self._ask({"op": "printopts"}, what)
            if not reply["ok"]:
                return None
            opts = self._decode(self._value(reply, what), what)
        except (NotPlainData, KernelDied, CellTimeout):
            return None
        if opts is None:
            return None  # the kernel has no numpy
        wanted, refused = checked_printoptions(opts)
        if refused:
            self.report.flag(f"{what} from the kernel were not plain options: {refused}")
        return wanted

    def seed_kernel(self, seed):
        try:
            self._ask({"op": "seed", "seed": seed}, "a seed")
        except Exception:  # noqa: BLE001 -- a kernel that will not seed only hurts itself
            pass


def _library_function(lib):
    """The trusted side's library function named [module, qualname] (e.g. numpy's
    `average`), or None.  Used only to pass a test's own library function into a student
    function by name (the kernel imports its own); a callable fetched from the kernel is
    always a proxy, so the student never picks code that runs on the trusted side.  The
    module must be loaded already (the function came from it): nothing is imported."""
    if type(lib) is not list or len(lib) != 2 or not all(type(p) is str for p in lib):
        return None
    module, qualname = lib
    if module.split(".")[0] not in ALLOWED_MODULES:
        return None
    obj = _defined_in(sys.modules.get(module), qualname)
    if obj is None or isinstance(obj, type) or type(obj) is types.ModuleType \
            or not callable(obj):
        return None
    return obj


def _defined_in(module, qualname):
    """What `module` already defines under `qualname` (a.b.c), read from each level's own
    __dict__: no module __getattr__ (numpy imports submodules lazily through it), no
    descriptor, no import. None when any part is missing or private."""
    if type(module) is not types.ModuleType or type(qualname) is not str:
        return None
    obj = module
    for i, part in enumerate(qualname.split(".")):
        if part.startswith("_") or not part.isidentifier():
            return None
        if i and not isinstance(obj, type):
            return None  # only classes nest further
        obj = vars(obj).get(part)
        if obj is None:
            return None
    return obj


def _library_object(o):
    """A module or class of an allow-listed library, as the trusted side has it: a module
    it has loaded already (at preload, while decoding, or by the test's own import), or
    one of policy.IMPORTABLE_MODULES, which it imports. No other name the kernel sends is
    imported: which submodules act on import (numpy.f2py.__main__ runs f2py's command
    line) is not ours to audit, so the student never picks code that runs here."""
    name = o.get("name") if o["t"] == "module" else o.get("module")
    if type(name) is not str:
        raise ValueError("the module name is not a string")
    what = ("module " if o["t"] == "module" else "a class from ") + name[:100]
    if name.split(".")[0] not in ALLOWED_MODULES:
        raise NotAllowed(what)
    module = sys.modules.get(name)
    if module is None:
        package = _importable_package(name)
        if package is not None:
            if package.split(".")[0] == "matplotlib":
                os.environ.setdefault("MPLBACKEND", "Agg")  # never a GUI backend here
            try:
                importlib.import_module(package)
            except ImportError:
                raise NotAllowed(what + " (not installed for the grader)") from None
            # A class's module (datascience.tables) is loaded by its package's own import.
            module = sys.modules.get(name)
    if type(module) is not types.ModuleType:
        # An honest kernel reports what the student imported; one the grader never
        # loads is refused like any object that cannot cross (and flagged for staff).
        raise Refused(what, "not loaded by the grader")
    if o["t"] == "module":
        return module
    cls = _defined_in(module, o.get("qualname"))
    if not isinstance(cls, type):
        raise NotAllowed(what + " (no such class in it)")
    return cls


def _importable_package(name):
    """The longest of `name` and its parent packages that policy.IMPORTABLE_MODULES lists
    (numpy for numpy.f2py.__main__), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in IMPORTABLE_MODULES:
            return ".".join(parts[:i])
    return None
