"""Run untrusted Python (model-written code) in a separate, limited process.

Two isolations, chosen once per process by ``isolation()`` (the README explains both):

- ``bubblewrap`` (where ``bwrap`` works): new PID, network and IPC namespaces, a new session, killed
  with openbench; a read-only view of the interpreter only (its prefixes, ``/usr`` and the library
  folders), a private tmpfs ``/tmp`` as the working folder; run as ``nobody`` when openbench is root.
- ``process-group`` (the fallback): the code runs behind a disposable intermediate process, in its own
  session and process group, so ``getppid()`` does not lead to openbench; the intermediate is a child
  subreaper and kills what the code left behind, double forks included. No filesystem isolation.

In both: ``python -I``, only ``PATH`` and ``LANG`` in the environment, limits on address space, CPU
time, file size and (for non-root users) processes, a wall-clock timeout, no network.

A test passes only if the harness reports that the program ran to its end: it writes a random nonce,
which it read from an inherited file descriptor and closed before the code starts, to a second
descriptor that child processes do not inherit. Exit status 0 alone is not enough, so ``sys.exit(0)``
or ``os._exit(0)`` before the tests fail. Code that searches the interpreter's memory for the nonce on
purpose can still forge it: the channel stops early exits, not deliberate attacks on the harness.

``OPENBENCH_SANDBOX`` chooses: ``auto`` (default: bubblewrap where it works), ``bubblewrap`` (required:
an error where it does not work) or ``process-group``.
"""

from __future__ import annotations

import functools
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter, sleep

from openbench.errors import OpenbenchError

OUTPUT_LIMIT_CHARS = 64 * 1024
NETWORK_NAMESPACE = "namespace"
NETWORK_PYTHON_GUARD = "python-guard"
ISOLATION_BUBBLEWRAP = "bubblewrap"
ISOLATION_PROCESS_GROUP = "process-group"
SANDBOX_ENV = "OPENBENCH_SANDBOX"
# Headroom above the user's current process count; enough for multiprocessing, not for a fork bomb.
EXTRA_PROCESSES = 64
# Under bubblewrap, a root openbench runs the code as this user, so that the process cap holds
# (root ignores RLIMIT_NPROC) and the code cannot raise its limits back.
UNPRIVILEGED_UID = 65534
# The process-group mode's own deadline is the timeout; openbench waits this much longer before it
# kills the intermediate itself (when the code killed it, or the machine is very busy).
INTERMEDIATE_GRACE_S = 5.0
# Host folders the interpreter may need besides its own prefixes: system software, no user data.
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache")

# Runs in the sandboxed interpreter before the code: limits, the user, the socket guard, then the
# program; the nonce is written only if the program returns. The child limits itself rather than
# using Popen(preexec_fn=...), which can deadlock when the parent has threads, and the runner runs
# blocking scorers in threads.
_PRELUDE = """\
import os, sys


def _harness(limits, guard, nonce_fd, report_fd, uid):
    import resource

    nonce = os.read(nonce_fd, 256)
    os.close(nonce_fd)
    report = os.dup(report_fd)  # not inheritable: the code's child processes never get it
    os.close(report_fd)
    with open("main.py", "rb") as f:  # before giving up root: whatever the umask made of its mode
        source = f.read()
    for name, value in limits:
        limit = getattr(resource, name, None)
        if limit is not None:
            hard = resource.getrlimit(limit)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):  # e.g. RLIMIT_AS on macOS
                pass
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if guard:
        import socket

        def refuse(original, ip_families=(socket.AF_INET, socket.AF_INET6)):
            def method(self, *args, **kwargs):
                if self.family in ip_families:
                    raise PermissionError(13, "network access is blocked by the openbench sandbox")
                return original(self, *args, **kwargs)

            return method

        for name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
            setattr(socket.socket, name, refuse(getattr(socket.socket, name)))
    sys.argv = ["main.py"]
    main = type(sys)("__main__")  # a fresh __main__ (runpy.run_path's effect, without importing it)
    main.__file__ = "main.py"
    sys.modules["__main__"] = main
    exec(compile(source, "main.py", "exec"), main.__dict__)
    os.write(report, nonce)


_harness({limits!r}, {guard!r}, {nonce_fd!r}, {report_fd!r}, {uid!r})
"""

# The process-group mode's intermediate (``python -I -S``, a few milliseconds): it starts the code in
# its own process group, reports the code's pid and exit status on a descriptor the code never sees,
# and kills everything left behind. As a child subreaper (Linux) it inherits orphans, so a double
# fork that left the group is found too. Arguments: timeout, status fd, nonce fd, the code's command.
_INTERMEDIATE = r"""
import os, select, signal, sys, time

timeout_s, status_fd, nonce_fd, command = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
linux = sys.platform.startswith("linux")
os.set_inheritable(status_fd, False)
if linux:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: openbench died


def stop(signum, frame):
    raise SystemExit(1)


def children():
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.append(int(entry.name))
    return found


def exited(pid, timeout_s):
    # True once the code has exited; left unreaped, so its pid and group id cannot be reused yet.
    try:
        ready = select.poll()
        ready.register(os.pidfd_open(pid), select.POLLIN)
        return bool(ready.poll(timeout_s * 1000))
    except (AttributeError, OSError):  # no pidfd (macOS, old kernels): poll
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
            time.sleep(0.005)
        return False


signal.signal(signal.SIGTERM, stop)
pid = os.fork()
if pid == 0:
    try:
        os.setpgid(0, 0)
        os.execvp(command[0], command)
    finally:
        os._exit(127)
os.close(nonce_fd)  # the nonce's pipe stays open in the code only, which empties it before the program starts
status = os.fdopen(status_fd, "w", buffering=1)
done = False
try:
    status.write(f"pid {pid}\n")
    done = exited(pid, timeout_s)
finally:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    returncode = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    deadline = time.monotonic() + 2
    while linux and time.monotonic() < deadline:
        left = children()
        if not left:
            break
        for child in left:
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        for child in left:
            try:
                os.waitpid(child, 0)
            except OSError:
                pass
status.write(f"exit {returncode}\n" if done else "timeout\n")
"""

@dataclass(frozen=True)
class SandboxResult:
    ok: bool  # the program ran to its end (the harness's nonce came back) and exited with status 0
    returncode: int | None  # negative: killed by that signal; None: timed out or unknown
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    network: str  # "namespace" or "python-guard"
    isolation: str = ISOLATION_PROCESS_GROUP  # "bubblewrap" or "process-group"
    completed: bool = False  # the harness reported that the program ran to its end
    # process-group mode: how the intermediate process ended when it could not report (the code killed it)
    intermediate_died: str = ""

    def last_error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def failure(self) -> str:
        """Why the program did not pass, in one line; empty when it passed."""
        if self.ok:
            return ""
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s"
        if self.intermediate_died:
            return f"the sandbox's intermediate process {self.intermediate_died} before it reported (the code's parent)"
        if self.completed:
            return f"the tests ran to the end, then the program {_ended(self.returncode)}"
        if self.returncode is not None and self.returncode < 0:
            return f"{_ended(self.returncode)} before the tests finished".removeprefix("was ")
        error = self.last_error_line()
        if self.returncode == 1 and error:
            return error  # an uncaught exception: its last traceback line
        return f"exited with status {self.returncode} before the tests finished" + (f" ({error})" if error else "")


def _ended(returncode: int | None) -> str:
    """``was killed by SIGKILL`` or ``exited with status 3``, from a Popen-style return code."""
    if returncode is not None and returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


@functools.lru_cache(maxsize=1)
def network_isolation() -> str:
    """``namespace`` when ``unshare -rn`` works here (checked once per process), else ``python-guard``."""
    if not sys.platform.startswith("linux"):
        return NETWORK_PYTHON_GUARD
    try:
        probe = subprocess.run(
            ["unshare", "-rn", sys.executable, "-I", "-c", "pass"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return NETWORK_PYTHON_GUARD
    return NETWORK_NAMESPACE if probe.returncode == 0 else NETWORK_PYTHON_GUARD


def interpreter_folders() -> list[str]:
    """What the interpreter needs, read-only: system folders and its prefixes (a venv, pyenv's version)."""
    folders = [path for path in SYSTEM_FOLDERS if os.path.lexists(path)]
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        real = os.path.realpath(prefix)
        if real != "/" and not any(real == f or real.startswith(f + "/") for f in folders):
            folders.append(real)
    return folders


def _bubblewrap_command(workdir: str) -> list[str]:
    command = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    command += ["--new-session", "--die-with-parent"]
    # The private /tmp first, so that an interpreter kept under /tmp (a venv in a temporary checkout) is bound on top.
    command += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    folders = interpreter_folders()
    # Parents that bwrap would otherwise create as 0700, which the unprivileged user cannot cross.
    parents = sorted({str(parent) for folder in folders for parent in Path(folder).parents} - {"/"})
    for parent in parents:
        if not any(parent == f or parent.startswith(f + "/") for f in folders):
            command += ["--perms", "0755", "--dir", parent]
    for folder in folders:
        if os.path.islink(folder):  # /lib -> usr/lib on merged-/usr systems
            command += ["--symlink", os.readlink(folder), folder]
        else:
            command += ["--ro-bind", folder, folder]
    command += ["--ro-bind", os.path.join(workdir, "main.py"), "/tmp/main.py", "--chdir", "/tmp", "--clearenv"]
    for name, value in _environment().items():
        command += ["--setenv", name, value]
    return command


@functools.lru_cache(maxsize=1)
def bubblewrap_works() -> bool:
    """An empty program passes under bubblewrap here (checked once per process)."""
    if not sys.platform.startswith("linux") or shutil.which("bwrap") is None:
        return False
    try:  # the whole path: namespaces, binds, the unprivileged user, the harness's report
        return _run("", ISOLATION_BUBBLEWRAP, timeout_s=10, memory_mb=512, file_mb=1).ok
    except OSError:
        return False


def isolation() -> str:
    """The isolation model code runs under here: ``bubblewrap`` or ``process-group`` (see ``OPENBENCH_SANDBOX``)."""
    wanted = os.environ.get(SANDBOX_ENV, "auto").strip().lower() or "auto"
    if wanted not in ("auto", ISOLATION_BUBBLEWRAP, ISOLATION_PROCESS_GROUP):
        raise OpenbenchError(
            f"{SANDBOX_ENV}={wanted!r}: use auto, {ISOLATION_BUBBLEWRAP} or {ISOLATION_PROCESS_GROUP}"
        )
    if wanted == ISOLATION_PROCESS_GROUP:
        return ISOLATION_PROCESS_GROUP
    if bubblewrap_works():
        return ISOLATION_BUBBLEWRAP
    if wanted == ISOLATION_BUBBLEWRAP:
        raise OpenbenchError(
            f"{SANDBOX_ENV}=bubblewrap, but bwrap is missing or does not work here (Debian: apt-get install bubblewrap)"
        )
    return ISOLATION_PROCESS_GROUP


def _environment() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": os.environ.get("LANG", "C.UTF-8")}


def _process_cap(uid: int) -> int | None:
    """RLIMIT_NPROC counts all of the user's processes, so the cap is set above the current count."""
    if uid == 0 or not Path("/proc").is_dir():
        return None  # root ignores the limit; elsewhere the count is unknown
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count + EXTRA_PROCESSES


def _limits(timeout_s: float, memory_mb: int, file_mb: int, uid: int) -> list[tuple[str, int]]:
    limits = [
        ("RLIMIT_AS", memory_mb * 1024 * 1024),
        # CPU time backs up the wall-clock timeout if the parent dies; +1 s so the timeout fires first.
        ("RLIMIT_CPU", math.ceil(timeout_s) + 1),
        ("RLIMIT_FSIZE", file_mb * 1024 * 1024),
        ("RLIMIT_CORE", 0),
    ]
    cap = _process_cap(uid)
    if cap is not None:
        limits.append(("RLIMIT_NPROC", cap))
    return limits


def _tail(handle, limit: int = OUTPUT_LIMIT_CHARS) -> str:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - limit * 4))
    text = handle.read().decode("utf-8", errors="replace")
    if len(text) > limit or size > limit * 4:
        return f"[… {size} bytes, showing the end]\n" + text[-limit:]
    return text


def _kill_group(pgid: int | None) -> None:
    if pgid is None or pgid <= 1:  # never 0 (our own group) or -1/1 (everything)
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class _Exit:
    returncode: int | None
    timed_out: bool
    intermediate_died: str = ""


def _exits_within(process: subprocess.Popen, timeout_s: float) -> bool:
    """True once ``process`` has exited within ``timeout_s``, left unreaped (so its pid and group id
    cannot be reused before we kill its group). Woken at the exit by a pidfd where there is one."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # macOS, old kernels: poll
        deadline = perf_counter() + timeout_s
        while perf_counter() < deadline:
            if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
            sleep(0.005)
        return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout_s * 1000))
    finally:
        os.close(pidfd)


def _run_bubblewrap(command: list[str], workdir: str, fds: tuple[int, int], timeout_s: float, **streams) -> _Exit:
    # --die-with-parent: killing bwrap ends the namespace's init, and with it every process inside.
    process = subprocess.Popen(
        [*_bubblewrap_command(workdir), *command], pass_fds=fds, start_new_session=True, **streams
    )
    exited = False
    try:
        exited = _exits_within(process, timeout_s)
    finally:
        _kill_group(process.pid)
        process.wait()
    returncode = process.returncode if exited else None
    if returncode is not None and returncode > 128 and returncode - 128 in signal.valid_signals():
        returncode = 128 - returncode  # bwrap exits 128+N when the code died of signal N
    return _Exit(returncode, timed_out=returncode is None)


def _run_process_group(command: list[str], workdir: str, fds: tuple[int, int], timeout_s: float, **streams) -> _Exit:
    status_read, status_write = os.pipe()
    intermediate_command = [sys.executable, "-I", "-S", "-c", _INTERMEDIATE, str(timeout_s), str(status_write)]
    intermediate_command += [str(fds[0]), *command]
    try:
        process = subprocess.Popen(
            intermediate_command, cwd=workdir, pass_fds=(*fds, status_write), start_new_session=True, **streams
        )
    finally:
        os.close(status_write)
    overdue = True
    try:
        overdue = not _exits_within(process, timeout_s + INTERMEDIATE_GRACE_S)
    finally:
        with os.fdopen(status_read, "r") as status:
            _kill_group(process.pid)
            process.wait()
            report = dict(line.partition(" ")[::2] for line in status.read().splitlines())  # every writer is gone
    if "exit" not in report and "timeout" not in report and "pid" in report:
        _kill_group(int(report["pid"]))  # the code killed the intermediate before it cleaned up
    if "timeout" in report or overdue:
        return _Exit(None, timed_out=True)
    if "exit" not in report:
        return _Exit(None, timed_out=False, intermediate_died=_ended(process.returncode))
    return _Exit(int(report["exit"]), timed_out=False)


def run_python(source: str, timeout_s: float = 10, memory_mb: int = 512, *, file_mb: int = 64) -> SandboxResult:
    """Run ``source`` as ``__main__`` in a fresh, limited interpreter; never raises for what the code does."""
    if os.name != "posix":
        raise OpenbenchError("running generated code needs Linux or macOS (the sandbox uses POSIX process limits)")
    return _run(source, isolation(), timeout_s, memory_mb, file_mb)


def _run(source: str, mode: str, timeout_s: float, memory_mb: int, file_mb: int) -> SandboxResult:
    network = NETWORK_NAMESPACE if mode == ISOLATION_BUBBLEWRAP else network_isolation()
    uid = UNPRIVILEGED_UID if mode == ISOLATION_BUBBLEWRAP and os.getuid() == 0 else os.getuid()
    nonce = os.urandom(16).hex().encode()
    with (
        tempfile.TemporaryDirectory(prefix="openbench-sandbox-", ignore_cleanup_errors=True) as workdir,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as report,
    ):
        # The nonce travels in a pipe: once the harness has read it, no descriptor can give it again.
        nonce_read, nonce_write = os.pipe()
        os.write(nonce_write, nonce)
        os.close(nonce_write)
        fds = (nonce_read, report.fileno())
        prelude = _PRELUDE.format(
            limits=_limits(timeout_s, memory_mb, file_mb, uid),
            guard=network == NETWORK_PYTHON_GUARD,
            nonce_fd=fds[0],
            report_fd=fds[1],
            uid=uid if mode == ISOLATION_BUBBLEWRAP else None,
        )
        command = [sys.executable, "-I", "-c", prelude]
        program = Path(workdir, "main.py")
        program.write_text(source, encoding="utf-8")
        program.chmod(0o644)  # readable by the unprivileged user whatever the umask (its folder stays private)
        start = perf_counter()
        if mode == ISOLATION_BUBBLEWRAP:
            run = _run_bubblewrap
        else:
            run = _run_process_group
            if network == NETWORK_NAMESPACE:
                command = ["unshare", "-rn", *command]
        streams = dict(env=_environment(), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            exit_ = run(command, workdir, fds, timeout_s, **streams)
        finally:
            os.close(nonce_read)
        duration = perf_counter() - start
        stdout, stderr = _tail(out), _tail(err)
        report.seek(0)
        completed = report.read() == nonce
    return SandboxResult(
        ok=completed and exit_.returncode == 0 and not exit_.timed_out,
        returncode=exit_.returncode,
        stdout=stdout,
        stderr=stderr,
        timed_out=exit_.timed_out,
        duration_s=duration,
        network=network,
        isolation=mode,
        completed=completed,
        intermediate_died=exit_.intermediate_died,
    )
