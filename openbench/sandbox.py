"""Run untrusted Python (model-written code) in a separate, limited process.

What it does, on Linux:
- a fresh interpreter (``sys.executable -I``: no user site, no ``PYTHON*``
  variables) in a new, empty temporary folder that is deleted afterwards, so
  relative paths land there;
- a minimal environment (``PATH`` and ``LANG`` only), so API keys and tokens in
  ``os.environ`` never reach the code;
- resource limits set by the child on itself before the code starts: address
  space (``memory_mb``), CPU seconds, size of any file written, no core dumps,
  and a cap on the number of processes for non-root users;
- a wall-clock timeout after which the whole process group is killed;
- no network: inside a new user + network namespace (``unshare -rn``) when the
  OS allows it, where only a loopback interface that is down exists. Where it
  does not, a Python-level guard refuses IP sockets. ``SandboxResult.network``
  says which one was used.

What it does NOT protect against:
- reading or writing files elsewhere by absolute path, with the rights of the
  user running openbench (no filesystem isolation);
- a process that leaves its process group (``os.setsid``) and outlives the
  timeout;
- under the Python-level guard: the raw ``_socket`` module, ``ctypes`` and
  child processes (``curl``, another interpreter) all reach the network;
- when openbench runs as root without a namespace, the code can raise its own
  limits back; the process cap is never enforced for root;
- memory on macOS, which does not enforce RLIMIT_AS (and has no namespaces, so
  the Python guard is used there);
- CPU, memory bandwidth or disk usage by many parallel runs, kernel exploits.

It is a guard against accidents and sloppy code, not a security boundary. Run
benchmarks of untrusted models in a container or VM as well.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from openbench.errors import OpenbenchError

OUTPUT_LIMIT_CHARS = 64 * 1024
NETWORK_NAMESPACE = "namespace"
NETWORK_PYTHON_GUARD = "python-guard"
# Headroom above the user's current process count; enough for multiprocessing, not for a fork bomb.
EXTRA_PROCESSES = 64

# Runs in the child before the code: limits first, then (without a namespace) the socket guard.
# The child limits itself rather than using Popen(preexec_fn=...), which can deadlock when the
# parent has threads, and the runner runs blocking scorers in threads.
_PRELUDE = """\
import resource, runpy, sys
for name, value in {limits!r}:
    limit = getattr(resource, name, None)
    if limit is not None:
        hard = resource.getrlimit(limit)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):  # e.g. RLIMIT_AS on macOS
            pass
if {guard!r}:
    import socket

    def _refuse(original, ip_families=(socket.AF_INET, socket.AF_INET6)):
        def method(self, *args, **kwargs):
            if self.family in ip_families:
                raise PermissionError(13, "network access is blocked by the openbench sandbox")
            return original(self, *args, **kwargs)

        return method

    for _name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
        setattr(socket.socket, _name, _refuse(getattr(socket.socket, _name)))
    del socket, _refuse, _name
del resource
sys.argv = ["main.py"]
runpy.run_path("main.py", run_name="__main__")
"""


@dataclass(frozen=True)
class SandboxResult:
    ok: bool  # exited with status 0 within the time limit
    returncode: int | None  # negative: killed by that signal
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    network: str  # "namespace" or "python-guard"

    def last_error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


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


def _process_cap() -> int | None:
    """RLIMIT_NPROC counts all of the user's processes, so the cap is set above the current count."""
    if os.getuid() == 0 or not Path("/proc").is_dir():
        return None  # root ignores the limit; elsewhere the count is unknown
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count + EXTRA_PROCESSES


def _limits(timeout_s: float, memory_mb: int, file_mb: int) -> list[tuple[str, int]]:
    limits = [
        ("RLIMIT_AS", memory_mb * 1024 * 1024),
        # CPU time backs up the wall-clock timeout if the parent dies; +1 s so the timeout fires first.
        ("RLIMIT_CPU", math.ceil(timeout_s) + 1),
        ("RLIMIT_FSIZE", file_mb * 1024 * 1024),
        ("RLIMIT_CORE", 0),
    ]
    cap = _process_cap()
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


def run_python(source: str, timeout_s: float = 10, memory_mb: int = 512, *, file_mb: int = 64) -> SandboxResult:
    """Run ``source`` as ``__main__`` in a fresh, limited interpreter; never raises for what the code does."""
    if os.name != "posix":
        raise OpenbenchError("running generated code needs Linux or macOS (the sandbox uses POSIX process limits)")
    network = network_isolation()
    prelude = _PRELUDE.format(limits=_limits(timeout_s, memory_mb, file_mb), guard=network == NETWORK_PYTHON_GUARD)
    command = [sys.executable, "-I", "-c", prelude]
    if network == NETWORK_NAMESPACE:
        command = ["unshare", "-rn", *command]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": os.environ.get("LANG", "C.UTF-8")}
    with (
        tempfile.TemporaryDirectory(prefix="openbench-sandbox-", ignore_cleanup_errors=True) as workdir,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        Path(workdir, "main.py").write_text(source, encoding="utf-8")
        start = perf_counter()
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        timed_out = False
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Also reaps anything the code left running in the background.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
        duration = perf_counter() - start
        stdout, stderr = _tail(out), _tail(err)
    return SandboxResult(
        ok=not timed_out and process.returncode == 0,
        returncode=None if timed_out else process.returncode,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        duration_s=duration,
        network=network,
    )
