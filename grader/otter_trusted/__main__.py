"""python -m otter_trusted --autograder A.zip --notebook S.ipynb --key-from-stdin [...]
   python -m otter_trusted --inputs-from-stdin [...]

The second form is the grading container's: the kernel starts (and the libraries load)
first, then the process waits on stdin for `<n>\n`, an n-byte tar with `autograder.zip`
and `submission.ipynb`, and the key line. A warm container (otter-service's pool) waits
there, with no student code anywhere, until its one job arrives.

Exit codes: 0 = results line written; 2 = bad input (key, autograder, notebook, usage);
3 = grading could not run (kernel did not start, internal error).  Only exit 0 writes to
stdout, and then exactly one line.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

EXIT_OK, EXIT_INPUT, EXIT_INTERNAL = 0, 2, 3


def _isolate_stdout():
    """Keep the real stdout for the result line only; everything else printed in this
    process (libraries, doctest, warnings) goes to stderr."""
    sys.stdout.flush()
    out_fd = os.dup(1)
    os.dup2(2, 1)
    return out_fd


def _trusted_sys_path():
    """`python -m` puts the current directory first on sys.path; use our own parent
    instead, so later lazy imports (numpy, pandas) never come from a writable cwd."""
    here = str(Path(__file__).resolve().parent.parent)
    sys.path[:] = [here] + [p for p in sys.path[1:] if p not in ("", os.getcwd())]


def _parse_args(argv):
    p = argparse.ArgumentParser(prog="otter_trusted")
    p.add_argument("--autograder", help="otter autograder zip")
    p.add_argument("--notebook", help="submission .ipynb")
    p.add_argument("--inputs-from-stdin", action="store_true",
                   help="start the kernel, then read the inputs and the key from stdin")
    p.add_argument("--preload", default="numpy,pandas,datascience,matplotlib.pyplot",
                   help="modules imported before the inputs arrive, if installed "
                        "(--inputs-from-stdin): in the kernel and on the trusted side")
    p.add_argument("--kernel-user", help="UID:GID for the kernel (only when run as root)")
    p.add_argument("--key-from-stdin", action="store_true",
                   help="read the per-job HMAC key (hex) from the first line of stdin")
    p.add_argument("--kernel-python", default=sys.executable,
                   help="python with ipykernel for the student's kernel (default: this one)")
    p.add_argument("--cell-timeout", type=float, default=300.0, help="seconds per cell/call")
    p.add_argument("--remove-autograder", action="store_true",
                   help="delete the autograder file once it is in memory")
    p.add_argument("--log-limit", type=int, default=65536, help="bytes of kernel output kept")
    args = p.parse_args(argv)
    if not args.inputs_from_stdin and not (args.autograder and args.notebook
                                           and args.key_from_stdin):
        p.error("give --autograder, --notebook and --key-from-stdin, or --inputs-from-stdin")
    return args


def _kernel_user(spec):
    if not spec:
        return None
    uid, _, gid = spec.partition(":")
    return int(uid), int(gid or uid)


def _workdir(user, notebook_name, nb_bytes, support_files):
    """base (0711) holds the connection file; base/work (the kernel's cwd) holds only the
    notebook and the autograder's support files, never tests."""
    base = Path(tempfile.mkdtemp(prefix="otter-trusted-"))
    work = base / "work"
    work.mkdir()
    if user is not None and os.geteuid() == 0:
        base.chmod(0o711)
    _fill_workdir(work, user, notebook_name, nb_bytes, support_files)
    return base, work


def _fill_workdir(work, user, notebook_name, nb_bytes, support_files):
    """Put the notebook and the support files in the kernel's directory, owned by it.
    (Root has no DAC_OVERRIDE in the container: it takes the directory back first.)"""
    as_root = user is not None and os.geteuid() == 0
    if as_root:
        os.chown(work, 0, 0)
    if notebook_name is not None:
        (work / notebook_name).write_bytes(nb_bytes)
    for name, data in support_files.items():
        dest = work / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    if as_root:
        for path in [work, *work.rglob("*")]:
            os.chown(path, *user)


MAX_INPUT_BYTES = 1 << 30


def _read_inputs(stream):
    """`<n>\n`, n bytes of tar (autograder.zip, submission.ipynb), then the key line."""
    import io
    import tarfile
    from . import protocol
    header = stream.readline(32).strip()
    if not header.isdigit() or int(header) > MAX_INPUT_BYTES:
        raise ValueError(f"bad input header {header[:32]!r}")
    size, chunks = int(header), []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise ValueError("the inputs ended early")
        chunks.append(chunk)
        size -= len(chunk)
    key = protocol.read_key(stream)
    files = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name in ("autograder.zip", "submission.ipynb"):
                    files[member.name] = tar.extractfile(member).read()
    except tarfile.TarError as e:
        raise ValueError(f"the inputs are not a tar archive: {e}") from None
    if len(files) != 2:
        raise ValueError("the inputs lack autograder.zip or submission.ipynb")
    return files["autograder.zip"], files["submission.ipynb"], key


def _preload(modules):
    """Import what tests and decoding will need, while no job is here yet."""
    import importlib
    for name in ("otter.test_files", *filter(None, modules.split(","))):
        try:
            importlib.import_module(name)
        except Exception:  # not installed, or broken: the job imports it (or fails) later
            pass


def main(argv=None):
    _trusted_sys_path()
    out_fd = _isolate_stdout()
    args = _parse_args(argv)
    if args.inputs_from_stdin:
        return _serve(args, out_fd)
    from . import autograder, protocol
    try:
        key = protocol.read_key(sys.stdin.buffer)
        zip_bytes = Path(args.autograder).read_bytes()
        if args.remove_autograder:
            os.unlink(args.autograder)
        nb_bytes = Path(args.notebook).read_bytes()
        json.loads(nb_bytes)
        user = _kernel_user(args.kernel_user)
        if user is not None and os.geteuid() != 0:
            print("otter_trusted: not root, so the kernel runs as this user", file=sys.stderr)
        support = autograder.support_files(zip_bytes)
    except (OSError, ValueError, protocol.ProtocolError) as e:
        print(f"otter_trusted: bad input: {e}", file=sys.stderr)
        return EXIT_INPUT
    base, work = _workdir(user, Path(args.notebook).name, nb_bytes, support)
    try:
        return _grade(args, key, zip_bytes, nb_bytes, user, work, out_fd)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _serve(args, out_fd):
    """The container's form: kernel and libraries first, then the one job from stdin."""
    from . import autograder, protocol
    from .kernel import KernelSession
    user = _kernel_user(args.kernel_user)
    base, work = _workdir(user, None, None, {})
    session = KernelSession(work, kernel_user=user, python=args.kernel_python,
                            log_limit=args.log_limit)
    evaluating = False  # _evaluate shuts the kernel down; every other ending does here
    try:
        try:
            session.start()
            _preload(args.preload)
            session.wait_ready(timeout=120)
            session.preload(args.preload.split(","), timeout=120)
        except Exception:
            traceback.print_exc()
            return EXIT_INTERNAL
        try:
            zip_bytes, nb_bytes, key = _read_inputs(sys.stdin.buffer)
            json.loads(nb_bytes)
            support = autograder.support_files(zip_bytes)
        except (OSError, ValueError, protocol.ProtocolError) as e:
            print(f"otter_trusted: bad input: {e}", file=sys.stderr)
            return EXIT_INPUT
        try:
            _fill_workdir(work, user, "submission.ipynb", nb_bytes, support)
        except OSError:
            traceback.print_exc()
            return EXIT_INTERNAL
        evaluating = True
        return _evaluate(args, key, zip_bytes, nb_bytes, session, out_fd)
    finally:
        if not evaluating:
            session.shutdown()
        shutil.rmtree(base, ignore_errors=True)


def _grade(args, key, zip_bytes, nb_bytes, user, work, out_fd):
    from .kernel import KernelSession
    session = KernelSession(work, kernel_user=user, python=args.kernel_python,
                            log_limit=args.log_limit)
    try:
        session.start()  # boots while we parse the tests
    except Exception:
        traceback.print_exc()
        session.shutdown()
        return EXIT_INTERNAL
    return _evaluate(args, key, zip_bytes, nb_bytes, session, out_fd)


def _evaluate(args, key, zip_bytes, nb_bytes, session, out_fd):
    """Grade with a started kernel; write the result line. Shuts the kernel down."""
    from . import autograder, protocol
    from .evaluate import Evaluator
    try:
        try:
            ag = autograder.load(zip_bytes)
        except (ValueError, SyntaxError, KeyError, AssertionError) as e:
            print(f"otter_trusted: bad autograder: {e}", file=sys.stderr)
            return EXIT_INPUT
        session.wait_ready(timeout=120)
        report = Evaluator(ag, session, cell_timeout=args.cell_timeout).run(nb_bytes)
        imitated = session.output.saw_marker or protocol.MARKER in session.fd_output()
        doc = report.document(list(ag.tests), marker_imitated=imitated)
        from .audit import audit_tests
        doc["audit"] = audit_tests(ag.tests)
    except Exception:
        traceback.print_exc()
        return EXIT_INTERNAL
    finally:
        _log_kernel_output(session)
        session.shutdown()
    os.write(out_fd, protocol.encode_line(doc, key).encode())
    return EXIT_OK


def _log_kernel_output(session):
    tail = session.output.tail() + session.fd_output()
    if tail.strip():
        print("---- kernel output (tail) ----", file=sys.stderr)
        print(tail[-session.output.limit:], file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
