"""Policy for what may cross from the kernel, and the exceptions tests see.

See grader/README.md ("Policies") for the reasoning behind each choice.
"""
import builtins
import contextlib
import random

# Library modules (top-level names) whose modules and classes a student name may stand
# for; they are imported on the trusted side, never taken from the kernel.
ALLOWED_MODULES = frozenset({
    "math", "cmath", "statistics", "random", "string", "re", "collections", "itertools",
    "functools", "operator", "datetime", "decimal", "fractions", "numpy", "pandas",
    "datascience", "scipy", "matplotlib"})  # matplotlib: Data 8 tests call plt.close()

# The modules a student name may stand for that the trusted side imports when it has not
# loaded them yet (reviewed: importing each has no effect beyond defining names). Any
# other module of the libraries above is mapped only if the trusted side has it loaded
# already (at preload, while decoding, or by a test's own import); no other name the
# kernel sends is ever imported (numpy.f2py.__main__, for one, runs a command line).
IMPORTABLE_MODULES = frozenset({
    "math", "cmath", "statistics", "random", "string", "re", "collections", "itertools",
    "functools", "operator", "datetime", "decimal", "fractions",
    "numpy", "numpy.random", "numpy.linalg", "pandas", "datascience",
    "scipy", "scipy.stats", "scipy.special", "matplotlib", "matplotlib.pyplot"})

# Builtins that compute on plain data only: a student name bound to one of these is the
# trusted builtin itself (so `f is abs` holds). Any other callable runs in the kernel.
PURE_BUILTINS = frozenset({
    "abs", "all", "any", "bin", "bool", "chr", "complex", "dict", "divmod", "enumerate",
    "filter", "float", "frozenset", "hex", "int", "isinstance", "issubclass", "len", "list",
    "map", "max", "min", "oct", "ord", "pow", "range", "repr", "reversed", "round", "set",
    "sorted", "str", "sum", "tuple", "zip", "bytes", "hash", "slice", "type", "object"})


class NotPlainData(Exception):
    """A name or result the tests need is not plain data (the submission is flagged)."""


class UnsupportedInTest(TypeError):
    """The test does something that cannot cross to the kernel (e.g. passes a lambda)."""


class StudentError(Exception):
    """A student function raised an exception that is not a builtin exception type."""


_SAFE_EXCEPTIONS = {n for n in dir(builtins)
                    if isinstance(getattr(builtins, n), type)
                    and issubclass(getattr(builtins, n), Exception)}


def exception_for(type_name, message):
    """The trusted-side exception for one raised by student code: same builtin type, or a
    fresh class with the student's name (so doctests expecting `ValueError: ...` match)."""
    if type_name in _SAFE_EXCEPTIONS:
        return getattr(builtins, type_name)(message)
    name = type_name if type_name.isidentifier() else "StudentError"
    cls = type(name, (StudentError,), {"__module__": "builtins"})
    return cls(message)


def _numpy():
    """The trusted side's numpy, imported up front: a test's `np` is decoded only once the
    test runs, after the seed and print-option hooks below must already be in place."""
    try:
        import numpy
        return numpy
    except ImportError:
        return None


@contextlib.contextmanager
def forwarded_seeds(fetcher):
    """While tests run, seeding random/numpy on the trusted side seeds the kernel too, so a
    test's `np.random.seed(42)` reaches student functions that draw random numbers."""
    np = _numpy()
    saved = [(random, "seed", random.seed)]
    if np is not None:
        saved.append((np.random, "seed", np.random.seed))
    for owner, attr, original in saved:
        setattr(owner, attr, _forwarding(original, fetcher))
    try:
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def _forwarding(original, fetcher):
    def seed(*args, **kwargs):
        result = original(*args, **kwargs)
        if len(args) == 1 and not kwargs and type(args[0]) is int:
            fetcher.seed_kernel(args[0])
        return result
    return seed


# numpy print options the kernel may report, each with the check its value must pass
# (the kernel's word sets how arrays print in doctests, as it would in otter's kernel,
# but only within numpy's own values; formatter and override_repr would be code).
_PRINT_OPTIONS = {
    "precision": lambda v: type(v) is int and 0 <= v <= 100,
    "threshold": lambda v: type(v) is int and v >= 0,
    "edgeitems": lambda v: type(v) is int and 0 <= v <= 10_000,
    "linewidth": lambda v: type(v) is int and 1 <= v <= 100_000,
    "suppress": lambda v: type(v) is bool,
    "nanstr": lambda v: type(v) is str and len(v) <= 20,
    "infstr": lambda v: type(v) is str and len(v) <= 20,
    "sign": lambda v: v in ("-", "+", " "),
    "floatmode": lambda v: v in ("fixed", "unique", "maxprec", "maxprec_equal"),
    "legacy": lambda v: v is False or v in ("1.13", "1.21", "1.25", "2.1", "2.2"),
}


def checked_printoptions(opts):
    """(options to apply, names refused) from what the kernel reported: only known
    options, each with a value numpy itself would report."""
    if type(opts) is not dict:
        return {}, ["<not a dict>"]
    wanted, refused = {}, []
    for name, value in opts.items():
        check = _PRINT_OPTIONS.get(name) if type(name) is str else None
        if check is not None and _passes(check, value):
            wanted[name] = value
        elif name not in ("formatter", "override_repr") or value is not None:
            refused.append(name if type(name) is str else f"<{type(name).__name__}>")
    return wanted, refused[:10]


def _passes(check, value):
    try:
        return check(value) is True
    except Exception:  # noqa: BLE001 -- e.g. an array compared with a string: no option
        return False


@contextlib.contextmanager
def kernel_printoptions(fetcher):
    """Apply the kernel's numpy print options (e.g. datascience's legacy='1.13') so reprs
    on the trusted side match what otter would have printed in the kernel."""
    np = _numpy()
    if np is None:
        yield
        return
    saved = np.get_printoptions()
    opts = fetcher.kernel_printoptions() or {}
    wanted = {k: v for k, v in opts.items() if k in saved}
    try:
        np.set_printoptions(**wanted)
    except (TypeError, ValueError):  # a combination this numpy refuses: its defaults
        np.set_printoptions(**saved)
    try:
        yield
    finally:
        np.set_printoptions(**saved)
