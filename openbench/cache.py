"""On-disk response cache, keyed only by what changes a model's output.

The key hashes the provider's identity (provider, model, endpoint), the
messages, the tools, tool choice and response format, and the sampling
parameters (seed included). Concurrency, timeouts and
retries never enter it. A replayed answer is marked ``cached`` and carries no
latency.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from openbench.records import ChatRequest, Completion, Timing, ToolCall, Usage


def cache_dir() -> Path:
    root = os.environ.get("OPENBENCH_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "openbench"


def cache_key(identity: dict[str, Any], request: ChatRequest) -> str:
    payload: dict[str, Any] = {
        "identity": identity,
        "messages": [[m.role, m.content] for m in request.messages],
        "sampling": dataclasses.asdict(request.sampling),
    }
    # Only present when used, so that plain prompts keep the keys they always had.
    if any(m.tool_calls or m.tool_call_id for m in request.messages):
        payload["turns"] = [dataclasses.asdict(m) for m in request.messages]
    if request.tools or request.tool_choice:
        payload["tools"] = [dataclasses.asdict(t) for t in request.tools]
        payload["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        payload["response_format"] = dataclasses.asdict(request.response_format)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class ResponseCache:
    """A small SQLite table of completions; safe to share between threads of one process."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "responses.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, completion TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        # Replays carry the provider's usage (it is what the call cost) but no timing.
        return Completion(
            text=data["text"],
            usage=Usage(**data["usage"]),
            timing=Timing(e2e_s=0.0),
            finish_reason=data.get("finish_reason"),
            tool_calls=tuple(ToolCall(**c) for c in data.get("tool_calls") or ()),
            structured_output=data.get("structured_output"),
        )

    def put(self, key: str, completion: Completion) -> None:
        data = {
            "text": completion.text,
            "usage": dataclasses.asdict(completion.usage),
            "finish_reason": completion.finish_reason,
            "tool_calls": completion.tool_calls_json(),
            "structured_output": completion.structured_output,
        }
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(data)))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
