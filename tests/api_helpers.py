"""Helpers for tests that run suites against HTTP APIs: suite files, run folders, the server's truth.

Imported by test modules (pytest puts tests/ on sys.path); fixtures stay in the test modules.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fakeserver import FakeServer, RequestRecord, last_user_text

# Distinctive strings, so that a leak anywhere is found by a plain substring search.
FAKE_OPENAI_KEY = "sk-openbench-test-0PENAI-k3y-do-not-print"
FAKE_ANTHROPIC_KEY = "sk-ant-openbench-test-ANTHR0PIC-k3y-do-not-print"

PROMPT = "[{{ id }}] Repeat: {{ words }}"


def echo_reply(body: dict[str, Any]) -> str:
    """The fake server's answer to PROMPT: the words after "Repeat: "."""
    return last_user_text(body).split("Repeat: ", 1)[1]


def case_id_of(record: RequestRecord) -> str:
    """The case a logged request was for: PROMPT puts the id first, in brackets."""
    return last_user_text(record.body).split("]", 1)[0].lstrip("[")


def completions(srv: FakeServer) -> list[RequestRecord]:
    """Completion requests only (not the providers' GET /models warm-up)."""
    return [r for r in srv.log if r.api is not None]


def cases(*words: str) -> list[dict[str, str]]:
    """Cases c0, c1, ... whose expected answer is their words, echoed."""
    return [{"id": f"c{i}", "words": w, "answer": w} for i, w in enumerate(words)]


def model(id: str, provider: str, name: str = "", **settings: Any) -> dict[str, Any]:
    """A model entry; fast retries and no cache unless a test asks otherwise."""
    defaults = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
    entry = {"id": id, "provider": provider, "model": name or defaults.get(provider, "served-model")}
    return entry | {"backoff_s": 0.01, "cache": False, "concurrency": 2} | settings


def write_suite(
    path: Path, models: list[dict[str, Any]], case_list: list[dict[str, Any]], defaults: dict[str, Any] | None = None, **task: Any
) -> Path:
    """A one-task suite (written as JSON, which is YAML) scored with exact match on ``answer``."""
    spec = {
        "name": "api",
        **({"defaults": defaults} if defaults else {}),
        "models": models,
        "tasks": [{"name": "echo", "prompt": PROMPT, "data": {"cases": case_list}, "scorers": [{"type": "exact"}], **task}],
    }
    path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return path


@dataclass
class RunOutcome:
    exit_code: int
    output: str
    run_dir: Path
    records: list[dict[str, Any]]
    manifest: dict[str, Any]

    def of(self, model_id: str) -> dict[str, dict[str, Any]]:
        """The records of one model by case id."""
        return {r["case_id"]: r for r in self.records if r["model"] == model_id}

    def model_entry(self, model_id: str) -> dict[str, Any]:
        return next(m for m in self.manifest["models"] if m["id"] == model_id)

    def everything_written(self) -> str:
        """CLI output plus every file of the run folder."""
        files = sorted(p for p in self.run_dir.rglob("*") if p.is_file())
        return self.output + "".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


def read_run(out: Path, exit_code: int, output: str) -> RunOutcome:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    lines = (run_dir / "records.jsonl").read_text(encoding="utf-8").splitlines() if (run_dir / "records.jsonl").exists() else []
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return RunOutcome(exit_code, output, run_dir, [json.loads(line) for line in lines], manifest)


class TestTimedOut(BaseException):
    """Raised into the main thread by ``time_limit`` (a BaseException, so nothing on the way catches it)."""

    __test__ = False


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail, rather than hang, when the body takes longer than ``seconds`` (main thread, POSIX)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(*_: Any) -> None:
        raise TestTimedOut(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
