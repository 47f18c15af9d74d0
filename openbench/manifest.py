"""The typed run manifest: what ``manifest.json`` holds, written and read only through these models.

``RunManifest`` describes one run folder: the suite it ran, its options, the
environment, the process that ran it, and one ``ModelEntry`` per model with its
status, counts, busy time and the price or hardware it is billed at. Prices and
hardware are the pricing package's own dataclasses, so nothing downstream
rebuilds them from dicts. JSON round-trips exactly (``to_json`` → ``from_json``).
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openbench.errors import RunError
from openbench.parity import TemplateFacts
from openbench.pricing.hardware import Hardware
from openbench.pricing.rates import Price
from openbench.suite import GateSpec

#: A model's state in a run. "degraded": finished, with an error share above the documented limit.
ModelStatus = Literal["pending", "ok", "degraded", "failed", "skipped", "not run", "interrupted"]

#: How a model's answers are paid for: per token at a price, by the hour of self-hosted hardware, or not at all.
Billing = Literal["per-token", "hardware", "free"]


class _Record(BaseModel):
    # Unknown keys from other versions are ignored; everything we write is declared.
    model_config = ConfigDict(extra="ignore")


class EngineInfo(_Record):
    """A serving engine that openbench launched for a model (``launch:``)."""

    engine: str
    version: str | None = None
    command: list[str] = Field(default_factory=list, description="The full command line, secrets masked.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables set for the engine, secrets masked.")
    base_url: str | None = None
    log: str | None = None
    load_s: float | None = Field(None, description="Launch to first ready answer; not part of busy time.")
    accelerators: list[str] = Field(default_factory=list, description="GPUs seen by nvidia-smi, else the CPU and its cores.")


class StructuredOutputUse(_Record):
    """How a model honoured a task's response_format (see records.StructuredMode)."""

    mode: str
    enforced: bool


class ModelEntry(_Record):
    id: str
    provider: str
    model: str
    status: ModelStatus = "pending"
    reason: str | None = None
    items: int = 0
    errors: int = 0
    cached: int = 0
    busy_s: float = 0.0
    output_tokens: int = 0
    in_flight: int | None = Field(None, description="Requests (or batch rows) the model had in flight.")
    billing: Billing | None = None
    price: Price | None = None
    hardware_profile: Hardware | None = None
    utilisation: float | None = None
    spent_usd: float = 0.0
    endpoint: str | None = Field(None, description="scheme://host/path the answers came from (no credentials).")
    template: TemplateFacts | None = Field(None, description="What a local model's chat template did to the suite's messages.")
    details: dict[str, Any] = Field(default_factory=dict, description="Facts the provider reports (device, dtype...).")
    engine: EngineInfo | None = Field(None, description="The serving engine openbench launched for this model, if any.")
    structured_output: dict[str, StructuredOutputUse] = Field(
        default_factory=dict, description="Per task with a response_format: whether the schema was enforced or only requested."
    )


class JudgeEntry(_Record):
    id: str
    calls: int = 0
    spent_usd: float = 0.0
    price: Price | None = None


class SuiteRef(_Record):
    name: str
    path: str
    sha256: str


class RunSettingsRecord(_Record):
    """The command-line choices a resumed run must reuse."""

    models: list[str] | None = None
    limit: int | None = None
    cache: bool = True
    max_cost_usd: float | None = None


class ProcessInfo(_Record):
    """The process running the run, so that readers can tell a dead run from a live one."""

    host: str
    pid: int
    started: float | None = Field(None, description="The process's start time (boot clock ticks), to detect PID reuse.")

    @classmethod
    def current(cls) -> ProcessInfo:
        return cls(host=socket.gethostname(), pid=os.getpid(), started=_process_start(os.getpid()))

    def alive(self) -> bool | None:
        """True or False on this host; None when the run was made on another host (unknown)."""
        if self.host != socket.gethostname():
            return None
        start = _process_start(self.pid)
        return start is not None and (self.started is None or start == self.started)


class RunManifest(_Record):
    run_id: str
    status: str = "running"
    openbench_version: str | None = None
    suite: SuiteRef | None = None
    tasks: list[str] = Field(default_factory=list)
    gate: GateSpec | None = None
    fingerprints: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per task: hashes of its prompt and scorers, and one per case (compare.suite_fingerprints)."
    )
    seed: int | None = None
    started_at: str | None = None
    resumed_at: list[str] = Field(default_factory=list)
    rescored_at: list[dict[str, Any]] = Field(default_factory=list)
    ended_at: str | None = None
    spent_usd: float = 0.0
    options: RunSettingsRecord = Field(default_factory=RunSettingsRecord)
    environment: dict[str, Any] = Field(default_factory=dict)
    process: ProcessInfo | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    judges: list[JudgeEntry] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    sandbox: str | None = Field(None, description="How model-written code was isolated (bubblewrap, process-group), if any ran.")

    def model(self, model_id: str) -> ModelEntry | None:
        return next((m for m in self.models if m.id == model_id), None)

    @property
    def effective_status(self) -> str:
        """The status, except that a run still marked "running" whose process is gone is "interrupted"."""
        if self.status == "running" and self.process is not None and self.process.alive() is False:
            return "interrupted"
        return self.status

    @property
    def finished(self) -> bool:
        return self.effective_status == "completed"

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "manifest.json") -> RunManifest:
        try:
            return cls.model_validate(json.loads(text))
        except json.JSONDecodeError as exc:
            raise RunError(f"{where} is not valid JSON: {exc.msg}") from None
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"])
            raise RunError(f"{where}: {field}: {err['msg']}") from None


def _process_start(pid: int) -> float | None:
    """A process's start time in clock ticks since boot (Linux), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        try:
            os.kill(pid, 0)  # other systems: existence only
        except (ProcessLookupError, PermissionError, OSError):
            return None
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return float(fields[19]) if fields[0] != "Z" else None
