"""The student's kernel, driven from the trusted side with jupyter_client.

The kernel gets only the notebook's cells (and the helper that answers data requests).
When the evaluator runs as root it starts the kernel as another uid with no capabilities,
no supplementary groups and no_new_privs, so it cannot signal, ptrace or read the trusted
process.  Its stdout/stderr file descriptors go to a private file, never to our stdout.
"""
import ast
import ctypes
import json
import os
import queue
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpec

from .output import OutputLog

_HERE = Path(__file__).parent
HELPER_MODULE = "_otter_trusted_kernel"
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24


class KernelDied(Exception):
    pass


class CellTimeout(Exception):
    pass


class BadReply(Exception):
    """The kernel answered the grader with something that is not a well-formed reply.

    Only student code can cause this (the helper and the kernel's messaging live in the
    student's process, so a notebook can replace them): it is evidence about the
    submission, never a reason for the evaluator to fail."""


# A reply's text is bounded by the container's memory, but nothing the tests need comes
# near this (a 57-column Data 8 table is about 30 MB): past it the reply is refused.
MAX_REPLY_CHARS = 256 << 20
POLL_SECS = 0.2        # how long one wait for the shell reply blocks before looking again
IDLE_GRACE_SECS = 5.0  # how long, after its reply, we wait for the kernel's idle status


def _parent_id(msg):
    """The msg_id a kernel message answers, or None when the message is malformed (the
    kernel can send anything on its channels): such a message is nobody's answer."""
    if type(msg) is not dict or type(msg.get("parent_header")) is not dict:
        return None
    if type(msg.get("content")) is not dict or type(msg.get("msg_type")) is not str:
        return None
    msg_id = msg["parent_header"].get("msg_id")
    return msg_id if type(msg_id) is str else None


def _first_to_go():
    """Make the kernel the out-of-memory killer's first choice (raising one's own score
    needs no privilege): a notebook that exhausts the container's memory ends as a dead
    kernel, while this process survives to report it."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def _drop_privileges(uid, gid):
    """preexec_fn for the kernel (runs as root in the child, before exec)."""
    _first_to_go()
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):  # empty the bounding set; EINVAL past the last cap is fine
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # leaving uid 0 clears permitted/effective/ambient caps
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        os._exit(126)


class _Manager(KernelManager):
    """Hands the connection file to the kernel's uid just before launch."""

    kernel_owner = None

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        if self.kernel_owner is not None:
            os.chown(self.connection_file, *self.kernel_owner)
        return await super()._async_launch_kernel(kernel_cmd, **kw)


class KernelSession:
    def __init__(self, workdir, kernel_user=None, python=sys.executable, log_limit=65536):
        self.workdir = Path(workdir)
        self.kernel_user = kernel_user
        self.python = python
        self.output = OutputLog(log_limit)
        self.dead = False
        self.malformed_messages = 0  # kernel messages that were nobody's answer
        self._fd_log = tempfile.TemporaryFile(prefix="kernel-fd-")  # unlinked: no path to open

    def start(self):
        km = _Manager()
        km._kernel_spec = KernelSpec(argv=[self.python, "-m", "ipykernel_launcher", "-f",
                                           "{connection_file}"],
                                     display_name="python3", language="python")
        km.connection_file = str(self.workdir.parent / f"kernel-{os.getpid()}.json")
        kw = dict(stdin=subprocess.DEVNULL, stdout=self._fd_log, stderr=self._fd_log,
                  cwd=str(self.workdir), env=self._env())
        if self.kernel_user is not None and os.geteuid() == 0:
            uid, gid = self.kernel_user
            km.kernel_owner = (uid, gid)
            kw["preexec_fn"] = lambda: _drop_privileges(uid, gid)
        else:
            kw["preexec_fn"] = _first_to_go
        km.start_kernel(**kw)
        self.km = km

    def wait_ready(self, timeout=60):
        if getattr(self, "kc", None) is not None:
            return  # ready already (a warm container's kernel)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=timeout)
        source = (_HERE / "codec.py").read_text() + (_HERE / "kernel_helper.py").read_text()
        install = ("import sys as _s, types as _t\n_m = _t.ModuleType(%r)\n"
                   "exec(compile(%r, %r, 'exec'), _m.__dict__)\n_s.modules[%r] = _m\n"
                   "del _s, _t, _m\n") % (HELPER_MODULE, source, HELPER_MODULE, HELPER_MODULE)
        self.execute(install, timeout=timeout, silent=True)

    def preload(self, modules, timeout=120):
        """Import library modules in the kernel before any student code (a warm
        container's head start); names stay out of the notebook's namespace, and a module
        that is not installed is skipped."""
        code = ("import importlib as _il\n_n = None\nfor _n in %r:\n    try:\n        _il.import_module(_n)\n"
                "    except Exception:\n        pass\ndel _il, _n\n") % ([m for m in modules if m],)
        self.execute(code, timeout=timeout, silent=True)

    def _env(self):
        keep = ("PATH", "LANG", "LC_ALL", "TZ")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(HOME=str(self.workdir), TMPDIR=str(self.workdir), PYTHONNOUSERSITE="1",
                   MPLBACKEND="Agg")
        return env

    def execute(self, code, timeout=None, silent=False, user_expressions=None):
        """Run code; return the execute_reply content (a dict; whatever else is in it is
        the kernel's word). Outputs go to the output log. Raises CellTimeout past
        `timeout`, KernelDied, and BadReply when the kernel answers with a message that
        is not one (only student code can make it do that)."""
        if self.dead:
            raise KernelDied("kernel is not running")
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent,
                                 user_expressions=user_expressions or {},
                                 allow_stdin=False, stop_on_error=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._idle = False
        reply = self._await_reply(msg_id, deadline)
        if not self._idle:
            # The reply comes before the kernel says it is idle; the outputs between go to
            # the log. A kernel whose status never comes costs it this grace, no more.
            self._take_iopub(msg_id, time.monotonic() + IDLE_GRACE_SECS)
        return reply

    def _await_reply(self, msg_id, deadline):
        """The shell reply to msg_id, draining the outputs meanwhile (so a flood of them is
        capped as it comes, not queued)."""
        while True:
            self._take_iopub(msg_id, None)
            left = POLL_SECS if deadline is None else min(POLL_SECS, deadline - time.monotonic())
            if left <= 0:
                self._interrupt()
                raise CellTimeout()
            try:
                parent, msg = self._next(self.kc.get_shell_msg, left)
            except queue.Empty:
                if not self.km.is_alive():
                    self.dead = True
                    raise KernelDied("kernel died") from None
                continue
            if parent is None:
                # Only a reply to our one request can be on the shell channel now: a
                # message that is not one is the kernel answering with garbage.
                raise BadReply("the kernel answered with a message that is not a reply")
            if parent == msg_id:
                return msg["content"]

    def _next(self, getter, timeout):
        """(msg_id it answers, message) of a channel's next message; (None, None) for one
        that is not a well-formed kernel message (counted). queue.Empty if none came."""
        try:
            msg = getter(timeout=timeout)
        except queue.Empty:
            raise
        except Exception:  # noqa: BLE001 -- jupyter_client could not unpack it
            msg = None
        parent = _parent_id(msg)
        if parent is None:
            self.malformed_messages += 1
            return None, None
        return parent, msg

    def _take_iopub(self, msg_id, until):
        """Output messages of msg_id into the log, until its idle status: what is there
        now (until=None; for at most POLL_SECS, so an endless flood of output cannot keep
        us from the cell's deadline), or waiting until the monotonic time `until`."""
        waiting = until is not None
        until = until if waiting else time.monotonic() + POLL_SECS
        while not self._idle:
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                parent, msg = self._next(self.kc.get_iopub_msg,
                                         min(left, POLL_SECS) if waiting else 0)
            except queue.Empty:
                if not waiting:
                    return
                continue
            if parent != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                self._idle = True
            else:
                self.output.add_message(msg)

    def _interrupt(self):
        """Interrupt a runaway cell; if the kernel does not come back, kill it."""
        self.km.interrupt_kernel()
        try:
            self.kc.wait_for_ready(timeout=10)
        except RuntimeError:
            self.shutdown()
            self.dead = True

    def request(self, req, timeout=None):
        """Ask the kernel helper. Returns its JSON reply: an object whose "ok" is a bool.
        Raises KernelDied or CellTimeout as execute() does, and BadReply for anything
        else the kernel sends instead of such a reply."""
        expr = "__import__(%r).handle(%r)" % (HELPER_MODULE, json.dumps(req))
        reply = self.execute("", timeout=timeout, silent=True, user_expressions={"r": expr})
        return _helper_reply(reply)

    def fd_output(self):
        self._fd_log.seek(0, os.SEEK_END)
        size = self._fd_log.tell()
        self._fd_log.seek(max(0, size - self.output.limit))
        return self._fd_log.read().decode("utf-8", "replace")

    def shutdown(self):
        try:
            self.kc.stop_channels()
        except Exception:
            pass
        try:
            self.km.shutdown_kernel(now=True)
        except Exception:
            pass
        try:
            os.unlink(self.km.connection_file)
        except (OSError, AttributeError):
            pass


def _helper_reply(execute_reply):
    """The helper's reply inside an execute_reply's user_expressions, checked step by
    step: every step that is not what the honest helper sends is a BadReply."""
    expressions = execute_reply.get("user_expressions")
    result = expressions.get("r") if type(expressions) is dict else None
    if type(result) is not dict:
        raise BadReply("the kernel's reply had no answer from the grader's helper")
    if result.get("status") != "ok":
        raise BadReply("the grader's helper in the kernel raised "
                       + str(result.get("ename", "an error"))[:100])
    data = result.get("data")
    text = data.get("text/plain") if type(data) is dict else None
    if type(text) is not str or len(text) > MAX_REPLY_CHARS:
        raise BadReply("the helper's answer was not text of a sane size")
    try:
        text = ast.literal_eval(text)
        if type(text) is not str:
            raise ValueError("not a string")
        reply = json.loads(text)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as e:
        raise BadReply(f"the helper's answer was not a JSON string ({type(e).__name__})") \
            from None
    if type(reply) is not dict or type(reply.get("ok")) is not bool:
        raise BadReply("the helper's answer was not a reply object")
    return reply
