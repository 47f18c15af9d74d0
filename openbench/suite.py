"""The suite file: pydantic models (unknown keys forbidden), loading and errors.

``load_suite`` turns a YAML file into a validated ``Suite``. Any problem becomes
one ``SuiteError`` naming the file, the line, the field, what was expected and,
for a misspelt name, a did-you-mean.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from openbench import registry
from openbench.errors import SuiteError
from openbench.pricing.rates import PriceOverride
from openbench.suitefile import DuplicateKey, dotted, line_for, parse_yaml, suite_error


#: Model options that mean something to some providers only; each provider class lists those it reads.
PROVIDER_OPTIONS = (
    "base_url", "api_key_env", "batch_api", "gguf_file", "dtype", "device", "batch_size", "batching", "field",
    "sampling", "reasoning_effort", "thinking", "prompt_cache", "launch", "chat_template", "constrained_decoding",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    system: str | None = Field(None, description="System prompt used when a task sets none.")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=1, le=1_000_000)
    seed: int | None = Field(0, ge=0, le=2**63 - 1, description="Sampling seed sent with every request (data samples use data.seed).")
    top_p: float | None = Field(None, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    repeats: int = Field(1, ge=1, le=1000, description="Samples per item (each with its own seed); statistics use item means.")


class HardwareSpec(_Strict):
    """What a self-hosted model runs on, for cost. ``name`` starts from a built-in profile."""

    name: str | None = Field(None, description="Built-in profile to start from: cpu-2core, l4, a100-80gb, h100.")
    accelerator: str | None = None
    count: int | None = Field(None, ge=1, le=100_000)
    usd_per_hour: float | None = Field(None, ge=0, le=1_000_000, description="Per accelerator (or instance).")
    utilisation: float | None = Field(
        None, gt=0, le=1, description="Share of rented time that is busy, for the dedicated view (default 0.5)."
    )

    def as_mapping(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"utilisation"})


class LaunchSpec(_Strict):
    """A serving engine that openbench starts for an ``openai-compatible`` model, and always stops."""

    engine: Literal["vllm", "sglang", "llama.cpp", "transformers"]
    model: str | None = Field(
        None, description="What the engine serves: a folder, a GGUF file, pkg://package/path or a hub id (default: the model's `model`)."
    )
    args: list[str] = Field(default_factory=list, description="Engine arguments, passed through unchanged.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables set for the engine process.")
    startup_timeout_s: float = Field(900.0, gt=0, le=86_400, description="How long loading may take before the run fails.")
    port: int | None = Field(None, ge=1, le=65_535, description="Loopback port (default: a free one).")


class SamplingOverride(_Strict):
    """Per-model sampling: a value replaces the suite's, null means "don't send it" (the model's default)."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)

    def given(self) -> dict[str, Any]:
        """Only the keys the suite wrote (null included)."""
        return {name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set}


class ThinkingSpec(_Strict):
    """Anthropic extended thinking; billed as output tokens."""

    type: Literal["enabled"] = "enabled"
    budget_tokens: int = Field(..., ge=1024, le=1_000_000, description="Tokens the model may think for (at least 1024).")


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]

class ModelSpec(_Strict):
    id: str = Field(..., min_length=1, description="Unique label used in tables and on the command line.")
    provider: str = Field(..., description="hf, openai, anthropic, openai-compatible, reference, or a plugin.")
    model: str = Field(
        ...,
        min_length=1,
        description="Provider model name; for hf a hub id, a local folder, or pkg://package/path.",
    )
    # API providers
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="Variable holding the API key.")
    launch: LaunchSpec | None = Field(None, description="openai-compatible: start this serving engine and use it (no base_url).")
    concurrency: int = Field(8, ge=1, le=4096)
    rpm: float | None = Field(None, gt=0, description="Requests per minute limit.")
    tpm: float | None = Field(None, gt=0, description="Tokens per minute limit (estimated from max_tokens).")
    timeout_s: float = Field(120.0, gt=0, le=86_400, description="Per-request timeout.")
    max_retries: int = Field(4, ge=0, le=50)
    backoff_s: float = Field(0.5, ge=0, le=600, description="First retry's backoff; doubles per attempt, with jitter.")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra request parameters passed through.")
    # closed-model options: what is sent, and vendor features (see README "Closed models")
    sampling: SamplingOverride | None = Field(None, description="Per-model sampling; null = don't send that parameter.")
    reasoning_effort: ReasoningEffort | None = Field(None, description="OpenAI reasoning models: how hard to think.")
    thinking: ThinkingSpec | None = Field(None, description="Anthropic extended thinking: {type: enabled, budget_tokens: N}.")
    prompt_cache: bool = Field(False, description="Anthropic: mark the system prompt for prompt caching.")
    # local (hf) providers
    gguf_file: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field("cpu", description="cpu, cuda, cuda:0, mps or auto (device_map='auto').")
    batch_size: int = Field(8, ge=1, le=4096)
    batching: Literal["static", "continuous"] = Field(
        "static",
        description="hf: static batches run until their longest answer ends; continuous refills a finished row at once "
        "(transformers' continuous batching; greedy items without stop strings). See the README's table.",
    )
    constrained_decoding: bool = Field(
        True, description="hf: hold answers to a task's response_format by grammar-constrained decoding (needs llguidance)."
    )
    chat_template: Literal["model", "suite-only"] = Field(
        "model", description="suite-only: keep the template from adding a system prompt the suite did not give."
    )
    # reference provider
    field: str | None = Field(None, description="reference provider: the case field to output.")
    # cost
    price: PriceOverride | None = None
    batch_api: bool = Field(False, description="Price at the vendor's batch-API discount.")
    hardware: str | HardwareSpec | None = Field(None, description="Hardware profile name or spec for self-hosted cost.")
    cache: bool | None = Field(None, description="Cache responses on disk (default: on for paid APIs).")

    @model_validator(mode="before")
    @classmethod
    def _reference_needs_no_model(cls, data: Any) -> Any:
        # The reference provider calls no model; it is labelled by the case field it outputs.
        if isinstance(data, dict) and data.get("provider") == "reference" and "model" not in data:
            return {**data, "model": f"field:{data.get('field') or ''}"}
        return data

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (e.g. http://localhost:8000/v1), got {value!r:.60}")
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if not registry.exists("provider", value):
            raise ValueError(
                f"unknown provider '{value}'{registry.did_you_mean(value, registry.names('provider'))}; "
                f"expected one of: {', '.join(registry.names('provider'))}"
            )
        return value



class ScorerSpec(BaseModel):
    """A scorer by ``type``, with an optional weight; other keys are the scorer's parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    weight: float = Field(1.0, gt=0, le=1_000_000, description="Share in the task's score; above 0.")
    label: str | None = Field(None, description="Column name when a task uses one scorer type twice.")
    target: Literal["output", "tool_arguments"] = Field(
        "output", description="What the scorer reads: the answer's text, or the first tool call's arguments as JSON."
    )

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def name(self) -> str:
        return self.label or self.type


class HFDataSpec(_Strict):
    path: str = Field(..., description="Dataset name on the hub, a builder (json/csv/parquet) or a saved folder.")
    name: str | None = Field(None, description="Dataset configuration.")
    split: str = "test"
    data_files: str | list[str] | None = None
    revision: str | None = None


class DataSpec(_Strict):
    cases: list[dict[str, Any]] | None = None
    file: str | None = Field(None, description="JSONL or CSV file, relative to the suite file.")
    hf: HFDataSpec | None = None
    limit: int | None = Field(None, ge=1, le=100_000_000)
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Sample `limit` cases with this seed.")
    id_field: str = "id"

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [k for k in ("cases", "file", "hf") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of cases, file or hf (got {', '.join(given) or 'none'})")
        return self


TEMPLATE_ROLES = ("system", "user", "assistant")


class MessageTemplate(_Strict):
    """One turn of a task's conversation; ``content`` is a Jinja2 template over the case's fields."""

    role: str = Field(..., description="system, user or assistant.")
    content: str

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in TEMPLATE_ROLES:
            raise ValueError(f"unknown role '{value}'{registry.did_you_mean(value, TEMPLATE_ROLES)}; expected one of: {', '.join(TEMPLATE_ROLES)}")
        return value


class ToolSpec(_Strict):
    """A function the model may call."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Letters, digits, _ and -, at most 64.")
    description: str | None = None
    parameters: dict[str, Any] = Field(..., description="JSON Schema of the arguments (an object).")

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json_schema(value)
        if value.get("type") != "object":
            raise ValueError("a tool's parameters must be a JSON Schema with type: object")
        return value


class ToolChoiceName(_Strict):
    name: str = Field(..., description="The tool the model must call.")


class ResponseFormatSpec(_Strict):
    """The answer must be JSON following a schema (enforced where the provider can; see the README)."""

    json_schema: dict[str, Any] = Field(..., description="A JSON Schema of the answer.")
    name: str = Field("response", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    strict: bool = Field(True, description="OpenAI: strict schema adherence.")

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json_schema(value)
        return value


def check_json_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError when ``schema`` is not a valid JSON Schema (draft 2020-12)."""
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(map(str, exc.path)) or "(root)"
        raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None


class TaskSpec(_Strict):
    name: str = Field(..., min_length=1)
    description: str | None = None
    system: str | None = Field(None, description="System prompt (Jinja2 template); defaults.system when unset.")
    prompt: str | None = Field(None, min_length=1, description="User message, a Jinja2 template over the case's fields.")
    messages: list[MessageTemplate] | None = Field(
        None, min_length=1, description="A conversation of templates (instead of prompt): few-shot turns, history."
    )
    messages_field: str | None = Field(
        None, min_length=1, description="A case field holding a conversation in the OpenAI chat format (instead of prompt)."
    )
    tools: list[ToolSpec] = Field(default_factory=list, description="Functions the model may call.")
    tool_choice: Literal["auto", "required", "none"] | ToolChoiceName | None = None
    response_format: ResponseFormatSpec | None = None
    data: DataSpec
    scorers: list[ScorerSpec] = Field(..., min_length=1)
    pass_threshold: float | None = Field(
        None, ge=0, le=1, description="An item passes when its weighted score reaches this; default: every scorer passes."
    )
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    cluster_field: str | None = Field(None, description="Case field whose items are correlated (for the statistics).")
    repeats: int | None = Field(None, ge=1, le=1000, description="Samples per item; defaults.repeats when unset.")

    @model_validator(mode="after")
    def _one_conversation(self) -> TaskSpec:
        given = [k for k in ("prompt", "messages", "messages_field") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of prompt, messages or messages_field (got {', '.join(given) or 'none'})")
        names = [t.name for t in self.tools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate tool name: {', '.join(dupes)}")
        if self.tool_choice is not None and not self.tools:
            raise ValueError("tool_choice needs tools")
        if isinstance(self.tool_choice, ToolChoiceName) and self.tool_choice.name not in names:
            raise ValueError(
                f"tool_choice names '{self.tool_choice.name}'{registry.did_you_mean(self.tool_choice.name, names)}, "
                f"which is not among the tools: {', '.join(names)}"
            )
        return self


class GateSpec(_Strict):
    baseline: str | None = None
    candidate: str | None = None
    margin: float = Field(0.02, gt=0, le=1, description="Largest acceptable quality drop (0.02 = 2 points).")
    confidence: float = Field(
        0.95, ge=0.8, lt=1, description="Two-sided confidence level; the quality test is one-sided at (1 - confidence) / 2."
    )
    max_error_increase: float = Field(
        0.02, ge=0, le=1, description="Largest acceptable rise in the error rate, per task (upper confidence bound)."
    )
    max_p95_latency_s: float | None = Field(None, gt=0)
    max_cost_per_task_usd: float | None = Field(None, ge=0)
    min_pass_rate: float | None = Field(None, ge=0, le=1)
    per_task: bool = Field(True, description="Apply the quality rule to every task, not only overall.")


class Suite(_Strict):
    name: str = Field(..., min_length=1)
    description: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    models: list[ModelSpec] = Field(..., min_length=1)
    tasks: list[TaskSpec] = Field(..., min_length=1)
    hardware: dict[str, HardwareSpec] = Field(default_factory=dict, description="Hardware profiles to add or override.")
    gate: GateSpec | None = None
    columns: list[str] | None = Field(
        None, description="Columns of the run's table, in order, e.g. [task, model, quality, p95, $/task]. Default: as many as fit."
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, keys: list[str] | None) -> list[str] | None:
        from openbench.report.table import column_error

        problem = column_error(keys or [])
        if problem:
            raise ValueError(problem)
        return keys

    @field_validator("models", "tasks")
    @classmethod
    def _unique(cls, items: list, info: Any) -> list:
        # A field validator, so that the error points at the list (its line and field).
        kind, labels = ("model id", [m.id for m in items]) if info.field_name == "models" else ("task name", [t.name for t in items])
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"duplicate {kind}: {', '.join(dupes)}")
        return items

    def hardware_for(self, model: ModelSpec, override: str | None = None) -> Any:
        """The model's ``pricing.Hardware`` (``override``: a CLI ``PROFILE[@USD_PER_HOUR]``), or None when it names none."""
        from openbench import pricing

        overrides = {name: spec.as_mapping() for name, spec in self.hardware.items()}
        if override is not None:
            return pricing.hardware_from_cli(override, overrides)
        ref = model.hardware
        if ref is None:
            return None
        return pricing.resolve_hardware(ref if isinstance(ref, str) else ref.as_mapping(), overrides)

    def utilisation_for(self, model: ModelSpec) -> float | None:
        ref = model.hardware
        spec = self.hardware.get(ref) if isinstance(ref, str) else ref
        return spec.utilisation if spec is not None else None


@dataclass(frozen=True)
class ParamProblem:
    """What a scorer's ``validate_params(params, suite)`` may return: why, and the parameter at fault."""

    message: str
    param: str | None = None


class LoadedSuite:
    """A validated suite plus where it came from."""

    def __init__(self, spec: Suite, path: Path, sha256: str, lines: dict[tuple, int]):
        self.spec, self.path, self.sha256, self._lines = spec, path, sha256, lines

    @property
    def dir(self) -> Path:
        return self.path.parent

    def error(self, message: str, loc: tuple) -> SuiteError:
        """A SuiteError located at ``loc`` (a path into the YAML document)."""
        return SuiteError(message, file=str(self.path), line=line_for(self._lines, loc), field=dotted(loc))

    def model(self, model_id: str) -> ModelSpec:
        for m in self.spec.models:
            if m.id == model_id:
                return m
        known = [m.id for m in self.spec.models]
        raise SuiteError(f"no model '{model_id}'{registry.did_you_mean(model_id, known)}. Known: {', '.join(known)}")


def load_suite(path: str | Path) -> LoadedSuite:
    import yaml

    path = Path(path)
    if not path.is_file():
        problem = "no such file" if not path.exists() else "expected a suite YAML file, got a folder" if path.is_dir() else "not a file"
        raise SuiteError(problem, file=str(path))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"not UTF-8 text (byte {exc.start})", file=str(path), line=raw[: exc.start].count(b"\n") + 1) from None
    if "\x00" in text:
        raise SuiteError("not a text file (contains NUL bytes)", file=str(path))
    lines: dict[tuple, int] = {}
    try:
        data = parse_yaml(text, lines)
    except DuplicateKey as exc:
        loc = next((loc for loc, n in lines.items() if loc and loc[-1] == exc.key and n == exc.line), None)
        raise SuiteError(exc.problem, file=str(path), line=exc.line, field=dotted(loc) if loc else None) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"invalid YAML: {problem}", file=str(path), line=mark.line + 1 if mark else None) from None
    except (ValueError, OverflowError, RecursionError) as exc:
        raise SuiteError(f"invalid YAML: {exc}", file=str(path)) from None
    if data is None:
        raise SuiteError("the file is empty; a suite needs name, models and tasks", file=str(path))
    if not isinstance(data, dict):
        raise SuiteError(
            f"expected a mapping with name, models and tasks at the top, got {type(data).__name__}",
            file=str(path),
            line=1,
        )
    try:
        spec = Suite.model_validate(data)
    except ValidationError as exc:
        raise suite_error(exc, path, lines, Suite) from None
    suite = LoadedSuite(spec, path.resolve(), hashlib.sha256(raw).hexdigest(), lines)
    from openbench.suitecheck import check_suite  # it reads the models above

    check_suite(suite)
    return suite


def json_schema() -> dict[str, Any]:
    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "openbench suite"
    return schema
