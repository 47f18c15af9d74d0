"""The typed records that flow from providers to the runner, the store and the reports.

Everything here is a frozen dataclass: cheap to build, safe to share, and
serialised to one JSON object per line in ``records.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for. ``arguments`` is the parsed JSON, or the raw text when
    that was not valid JSON (``invalid_json`` is then True)."""

    name: str
    arguments: Any = field(hash=False)  # a dict is not hashable; messages are (they key memos)
    invalid_json: bool = False
    id: str | None = None

    @classmethod
    def parse(cls, name: str, raw: str | None, id: str | None = None) -> ToolCall:
        text = (raw or "").strip() or "{}"
        try:
            return cls(name, json.loads(text), False, id)
        except json.JSONDecodeError:
            return cls(name, raw, True, id)


@dataclass(frozen=True)
class Message:
    """One conversation turn. Assistant turns may carry tool calls; ``tool`` turns answer one by id."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class Tool:
    """A function offered to the model: ``parameters`` is a JSON Schema of its arguments."""

    name: str
    description: str | None
    parameters: dict[str, Any] = field(hash=False, compare=True)


@dataclass(frozen=True)
class ResponseFormat:
    """The answer must be JSON following ``schema``."""

    schema: dict[str, Any] = field(hash=False)
    name: str = "response"
    strict: bool = True


@dataclass(frozen=True)
class Sampling:
    """The parameters that change a model's output (and so enter the cache key)."""

    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()


class StructuredMode:
    """How a provider honours a ``response_format``; recorded per item and per model in the manifest."""

    STRICT = "json_schema_strict"  # OpenAI: the API enforces the schema
    FORCED_TOOL = "forced_tool"  # Anthropic: a tool whose input is the schema, forced
    GRAMMAR = "grammar"  # local: constrained decoding
    REQUESTED = "response_format"  # sent as response_format; the server may or may not enforce it
    NOT_SENT = "not_sent"  # the provider cannot pass a schema: only the prompt asks for it

    ENFORCED = frozenset({STRICT, FORCED_TOOL, GRAMMAR})


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    sampling: Sampling
    tools: tuple[Tool, ...] = ()
    #: "auto" | "required" | "none" | a tool's name (that tool is forced); None: the provider's default
    tool_choice: str | None = None
    response_format: ResponseFormat | None = None

    @property
    def extra_chars(self) -> int:
        """Prompt characters beside the turns' text: tool definitions, tool-call arguments, the answer's schema.

        Vendors bill them as input tokens, so estimates and budgets count them (as JSON text).
        """
        parts = [dataclasses.asdict(t) for t in self.tools] + [c.arguments for m in self.messages for c in m.tool_calls]
        if self.response_format is not None:
            parts.append(self.response_format.schema)
        return sum(len(json.dumps(p)) for p in parts)

    @property
    def prompt_chars(self) -> int:
        """Every prompt character a vendor bills: the turns' text plus ``extra_chars``."""
        return sum(len(m.content) for m in self.messages) + self.extra_chars


@dataclass(frozen=True)
class Usage:
    """Token counts as reported by the provider.

    ``input_tokens`` counts every prompt token, cached or not (OpenAI's
    convention); ``cached_input_tokens`` and ``cache_write_tokens`` are subsets
    of it. ``reasoning_tokens`` is a subset of ``output_tokens``.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    source: str | None = None


@dataclass(frozen=True)
class Timing:
    """Timing of one successful attempt. See README "Metric definitions"."""

    e2e_s: float
    ttft_s: float | None = None
    itl_s: float | None = None
    chunks: int = 0
    thinking_s: float | None = None  # send → first reasoning delta, where the stream shows it


@dataclass(frozen=True)
class Completion:
    """What a provider returns for one successful attempt."""

    text: str
    usage: Usage
    timing: Timing
    finish_reason: str | None = None
    throttle_s: float | None = None  # the vendor's rate-limit headers ask to wait this long before the next request
    tool_calls: tuple[ToolCall, ...] = ()
    #: How a ``response_format`` was honoured (see ``StructuredMode``); None when none was asked.
    structured_output: str | None = None
    #: What the provider changed on the way (e.g. merged turns), for the record's ``notes``.
    notes: tuple[str, ...] = ()

    def tool_calls_json(self) -> list[dict[str, Any]] | None:
        return [dataclasses.asdict(c) for c in self.tool_calls] if self.tool_calls else None


@dataclass(frozen=True)
class ScoreResult:
    value: float
    passed: bool
    explanation: str = ""


@dataclass(frozen=True)
class JudgeUsage:
    """What a judge's calls for one item used, kept apart from the candidate's own tokens and cost."""

    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_s: float


@dataclass(frozen=True)
class ItemResult:
    """One line of records.jsonl: a (task, case, model) outcome."""

    task: str
    case_id: str
    model: str
    sample: int = 0  # which of a task's `repeats` samples of the item (0 for the first or only one)
    output: str | None = None
    score: float | None = None
    passed: bool | None = None
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    thinking_s: float | None = None
    itl_s: float | None = None
    tpot_s: float | None = None
    output_tps: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    usage_source: str | None = None
    cost_usd: float | None = None
    cached: bool = False
    attempts: int = 0
    wall_s: float | None = None
    finish_reason: str | None = None
    started_at: str | None = None
    cluster: str | None = None
    judge: JudgeUsage | None = None
    prompt_sha256: str | None = None  # what was sent: the rendered prompt (local models) or the messages (APIs)
    tool_calls: list[dict[str, Any]] | None = None  # [{name, arguments, invalid_json, id}]
    structured_output: str | None = None  # how a response_format was honoured (StructuredMode)
    notes: list[str] | None = None  # what the provider changed on the way (e.g. merged turns)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.task, self.case_id, self.model, self.sample)

    def to_dict(self) -> dict[str, Any]:
        # Written once per item on the request path: a flat copy is ~10x cheaper than dataclasses.asdict.
        data = dict(self.__dict__)
        if not self.sample:
            del data["sample"]  # single-sample records keep the key they always had
        data["scores"] = dict(self.scores)
        if self.judge is not None:
            data["judge"] = dict(self.judge.__dict__)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemResult:
        """A record read back from records.jsonl (unknown keys from other versions are dropped)."""
        missing = _REQUIRED - data.keys()
        if missing:
            raise TypeError(f"record lacks {', '.join(sorted(missing))}")
        # Reports read every record of a run; filling __dict__ directly is ~5x faster than the
        # frozen dataclass's __init__, and these fields were written by ``to_dict``.
        record = object.__new__(cls)
        values = {**_DEFAULTS, "scores": {}}
        values.update(data if data.keys() <= _ITEM_FIELDS else {k: v for k, v in data.items() if k in _ITEM_FIELDS})
        old = data.get("extra")
        if old:  # records written before the cluster label and judge usage had fields of their own
            values["cluster"] = values["cluster"] if values["cluster"] is not None else old.get("cluster")
            values["judge"] = values["judge"] or old.get("judge")
        if values["judge"] is not None:
            values["judge"] = JudgeUsage(**values["judge"])
        object.__setattr__(record, "__dict__", values)
        return record


_ITEM_FIELDS = frozenset(f.name for f in dataclasses.fields(ItemResult))
_REQUIRED = frozenset(f.name for f in dataclasses.fields(ItemResult) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ItemResult) if f.default is not dataclasses.MISSING}
