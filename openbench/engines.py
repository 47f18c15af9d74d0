"""Serving engines that openbench starts itself: start, readiness and stop of one engine process.

An ``openai-compatible`` model with ``launch:`` gets its own engine (vLLM, SGLang, llama.cpp or
``transformers serve``) on a free loopback port. The engine runs in its own process group with
its log in the run folder, and never outlives openbench: it is stopped at the end of the model,
on errors, on Ctrl-C and SIGTERM (through the provider's ``close``), at interpreter exit, and on
``kill -9`` of openbench (the kernel kills it with its parent, and a watchdog process kills the
rest of its process group).
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, perf_counter
from typing import Any, Callable

from openbench.errors import EngineError, MissingDependency
from openbench.manifest import EngineInfo

HOST = "127.0.0.1"
POLL_S = 0.25
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 25
SECRET_WORDS = ("key", "token", "secret", "password")
_PR_SET_PDEATHSIG = 1

# Runs beside the engine, in a session of its own: when openbench dies without stopping the engine
# (kill -9), it ends the engine's whole process group (workers included); it exits once the group is gone.
_WATCHDOG = """
import os, signal, sys, time
group, parent = int(sys.argv[1]), int(sys.argv[2])
def alive():
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while os.getppid() == parent and alive():
    time.sleep(0.2)
for sig in (signal.SIGTERM, signal.SIGKILL):
    if not alive():
        break
    os.killpg(group, sig)
    time.sleep(3)
"""


@dataclass(frozen=True)
class EngineKind:
    """How to start one engine, what it calls its package, and where it counts tokens."""

    name: str
    package: str  # distribution name, for the version
    install: str
    command: Callable[[str, int], list[str] | None]  # (model, port) -> argv without user args; None: not installed
    tokenize: str | None  # the server's tokenize dialect (see providers/counting.py), if any
    reads_gguf: bool = False  # serves a .gguf file as it is; otherwise it gets a plain transformers copy


def _executable(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def _transformers(model: str, port: int) -> list[str] | None:
    exe = _executable("transformers")
    if exe is None or importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        return None
    return [exe, "serve", model, "--host", HOST, "--port", str(port)]


def _vllm(model: str, port: int) -> list[str] | None:
    exe = _executable("vllm")
    return [exe, "serve", model, "--host", HOST, "--port", str(port)] if exe else None


def _sglang(model: str, port: int) -> list[str] | None:
    if importlib.util.find_spec("sglang") is None:
        return None
    return [sys.executable, "-m", "sglang.launch_server", "--model-path", model, "--host", HOST, "--port", str(port)]


def _llama_cpp(model: str, port: int) -> list[str] | None:
    exe = _executable("llama-server")  # llama.cpp's own server first, else llama-cpp-python's
    if exe:
        return [exe, "-m", model, "--host", HOST, "--port", str(port)]
    if importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None:
        return [sys.executable, "-m", "llama_cpp.server", "--model", model, "--host", HOST, "--port", str(port)]
    return None


ENGINES: dict[str, EngineKind] = {
    "transformers": EngineKind("transformers", "transformers", "pip install 'transformers[serving]'", _transformers, None),
    "vllm": EngineKind("vllm", "vllm", "pip install vllm", _vllm, "vllm", reads_gguf=True),
    "sglang": EngineKind("sglang", "sglang", "pip install 'sglang[all]'", _sglang, None),
    "llama.cpp": EngineKind("llama.cpp", "llama_cpp_python", "pip install 'llama-cpp-python[server]' (or put llama-server on PATH)", _llama_cpp, "llama.cpp", reads_gguf=True),
}


def engine_command(engine: str, model: str, port: int, args: list[str]) -> list[str]:
    """The full command line, or MissingDependency naming how to install the engine."""
    kind = ENGINES[engine]
    base = kind.command(model, port)
    if base is None:
        raise MissingDependency(kind.package.replace("_", "-"), f"launch: {{engine: {engine}}}", kind.install)
    return [*base, *args]


def engine_version(engine: str, command: list[str]) -> str | None:
    if Path(command[0]).name == "llama-server":
        try:
            out = subprocess.run([command[0], "--version"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = re.search(r"version:\s*(\S+)", out.stdout + out.stderr)
        return f"llama-server {found.group(1)}" if found else None
    try:
        return importlib.metadata.version(ENGINES[engine].package)
    except importlib.metadata.PackageNotFoundError:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


def mask_command(command: list[str]) -> list[str]:
    """The command line with the values of secret-looking options (``--api-key X``, ``--hf-token=X``) masked."""
    out: list[str] = []
    hide_next = False
    for arg in command:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        secret = arg.startswith("-") and any(w in arg.lower() for w in SECRET_WORDS)
        if secret and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
            hide_next = secret
    return out


def mask_env(env: dict[str, str]) -> dict[str, str]:
    return {k: "***" if any(w in k.lower() for w in SECRET_WORDS) else v for k, v in env.items()}


def accelerators() -> list[str]:
    """The GPUs ``nvidia-smi`` sees, or else the CPU model and its core count."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=15,
            )
            gpus = [line.strip() for line in out.stdout.splitlines() if line.strip()]
            if out.returncode == 0 and gpus:
                return gpus
        except (OSError, subprocess.TimeoutExpired):
            pass
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    import platform

    return [f"CPU: {model or platform.processor() or platform.machine()} ({os.cpu_count()} cores)"]


def _die_with_parent() -> None:
    """In the engine's process, before exec: the kernel sends it SIGKILL when openbench's thread dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watchdog alone covers it
        pass


_RUNNING: set[EngineProcess] = set()


@atexit.register
def _stop_all() -> None:
    for engine in list(_RUNNING):
        engine.stop()


class EngineProcess:
    """One engine process: ``start`` launches it, ``wait_ready`` waits for its API, ``stop`` ends its process group."""

    def __init__(self, engine: str, model: str, args: list[str], env: dict[str, str], log_path: Path, port: int | None = None):
        self.engine, self.model, self.args, self.env = engine, model, list(args), dict(env)
        self.log_path = log_path
        self.port = port
        self.command: list[str] = []
        self.load_s: float | None = None
        self.version: str | None = None
        self._proc: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._log: Any = None
        self._started = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Launch the engine. Must run on the thread that lives as long as the run (the kernel's
        parent-death signal follows the thread that started the child)."""
        if self.port is None:
            self.port = free_port()
        elif port_in_use(self.port):
            raise EngineError(f"{self.engine}: port {self.port} on {HOST} is already in use; free it, or leave `port` out to get a free one")
        self.command = engine_command(self.engine, self.model, self.port, self.args)
        self.version = engine_version(self.engine, self.command)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._log.write(f"$ {' '.join(mask_command(self.command))}\n".encode())
        self._log.flush()
        env = {**os.environ, **self.env}
        self._started = perf_counter()
        self._proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        _RUNNING.add(self)
        self._watchdog = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(self._proc.pid), str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    async def wait_ready(self, timeout_s: float) -> None:
        """Until ``/health`` or ``/v1/models`` answers 200; EngineError with the log's tail if the engine exits or is late."""
        deadline = monotonic() + timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EngineError(self._failure(f"exited with code {code} before it was ready"))
            if await asyncio.to_thread(self._answers):
                self.load_s = perf_counter() - self._started
                return
            if monotonic() > deadline:
                raise EngineError(self._failure(f"was not ready within startup_timeout_s={timeout_s:g}s"))
            await asyncio.sleep(POLL_S)

    def _answers(self) -> bool:
        for path in ("/health", "/v1/models"):
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=2) as response:
                    if response.status == 200:
                        return True
            except (OSError, urllib.error.HTTPError):
                continue
        return False

    def _failure(self, what: str) -> str:
        return (
            f"engine {self.engine} {what}.\n  command: {' '.join(mask_command(self.command))}\n"
            f"  log: {self.log_path}\n  last lines of the log:\n" + "\n".join(f"    {line}" for line in self.tail())
        )

    def tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            text = self.log_path.read_bytes()[-16_000:].decode(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def stop(self) -> None:
        """End the engine's process group: SIGTERM, then SIGKILL after a grace period. Safe to call twice."""
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is not None:
            group = proc.pid
            _signal_group(group, signal.SIGTERM)
            deadline = monotonic() + STOP_GRACE_S
            while monotonic() < deadline and (proc.poll() is None or _group_alive(group)):
                try:
                    proc.wait(POLL_S)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None or _group_alive(group):  # only a group that still exists (its id is not reused then)
                _signal_group(group, signal.SIGKILL)
            proc.wait()
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine=self.engine,
            version=self.version,
            command=mask_command(self.command),
            env=mask_env(self.env),
            base_url=f"{self.base_url}/v1",
            log=str(self.log_path),
            load_s=round(self.load_s, 3) if self.load_s is not None else None,
            accelerators=accelerators(),
        )


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(group: int, sig: int) -> None:
    if group <= 1:  # never signal every process (-1) or our own group (0)
        return
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass
