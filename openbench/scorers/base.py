"""Binding a suite's scorer specs to functions, and combining their results per item.

A scorer is a function ``fn(output: str, case: dict, *, param=default, ...)``
returning a ``ScoreResult`` with a value in [0, 1]. String parameters
(including defaults such as ``expected="{{ answer }}"``) are Jinja2 templates
over the case's fields.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from openbench import registry
from openbench.prompts import fields_used, render_value
from openbench.records import ScoreResult
from openbench.suite import ScorerSpec, TaskSpec

CONTEXT_PARAM = "ctx"
#: A scorer that declares this keyword receives the answer's tool calls ([{name, arguments, invalid_json, id}]).
TOOL_CALLS_PARAM = "tool_calls"
INJECTED_PARAMS = (CONTEXT_PARAM, TOOL_CALLS_PARAM)


@dataclass(frozen=True)
class BoundScorer:
    name: str
    weight: float
    fn: Callable[..., ScoreResult]
    params: dict[str, Any]
    target: str = "output"

    @classmethod
    def bind(cls, spec: ScorerSpec) -> BoundScorer:
        fn = registry.resolve("scorer", spec.type)
        sig = inspect.signature(fn)
        defaults = {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.default is not inspect.Parameter.empty and p.name not in INJECTED_PARAMS
        }
        return cls(spec.name, spec.weight, fn, {**defaults, **spec.params}, spec.target)

    @property
    def blocking(self) -> bool:
        """Scorers that run models or subprocesses say so, and are run off the event loop."""
        return bool(getattr(self.fn, "blocking", False))

    def fields_used(self) -> set[str]:
        found: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, str) and "{" in value:
                found.update(fields_used(value))
            elif isinstance(value, dict):
                for v in value.values():
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(self.params)
        return found

    @functools.cached_property
    def needs_context(self) -> bool:
        """Scorers that call models (judges) take a ``ctx`` and are coroutines."""
        return CONTEXT_PARAM in inspect.signature(self.fn).parameters

    @functools.cached_property
    def wants_tool_calls(self) -> bool:
        return TOOL_CALLS_PARAM in inspect.signature(self.fn).parameters

    def __call__(self, output: str, case: dict[str, Any], tool_calls: list[dict[str, Any]] | None = None, **ctx: Any) -> Any:
        if self.target == "tool_arguments":
            output = tool_arguments_text(tool_calls)
        if self.wants_tool_calls:
            ctx[TOOL_CALLS_PARAM] = list(tool_calls or ())
        return self.fn(output, case, **render_value(self.params, case), **ctx)


def tool_arguments_text(tool_calls: list[dict[str, Any]] | None) -> str:
    """The first tool call's arguments as JSON text (raw when they were not JSON); empty without a call."""
    import json

    if not tool_calls:
        return ""
    first = tool_calls[0]
    return first["arguments"] if first.get("invalid_json") else json.dumps(first["arguments"], ensure_ascii=False)


def bind_task(task: TaskSpec) -> list[BoundScorer]:
    return [BoundScorer.bind(spec) for spec in task.scorers]


def combine(
    scorers: list[BoundScorer],
    output: str,
    case: dict[str, Any],
    pass_threshold: float | None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> tuple[float, bool, dict[str, dict[str, Any]]]:
    """Weighted mean of plain (synchronous) scorers; see ``aggregate``."""
    # An exception here makes the item an error, never a silent 0.
    return aggregate(scorers, [s(output, case, tool_calls) for s in scorers], pass_threshold)


async def combine_async(
    scorers: list[BoundScorer],
    output: str,
    case: dict[str, Any],
    pass_threshold: float | None,
    ctx: Any,
    tool_calls: list[dict[str, Any]] | None = None,
) -> tuple[float, bool, dict[str, dict[str, Any]]]:
    """Like ``combine``, for tasks with judges (awaited with a context) or blocking scorers (run in a thread)."""
    import asyncio

    results = []
    for scorer in scorers:
        if scorer.needs_context:
            results.append(await scorer(output, case, tool_calls, ctx=ctx))
        elif scorer.blocking:
            results.append(await asyncio.to_thread(scorer, output, case, tool_calls))
        else:
            results.append(scorer(output, case, tool_calls))
    return aggregate(scorers, results, pass_threshold)


def aggregate(
    scorers: list[BoundScorer], results: list[ScoreResult], pass_threshold: float | None
) -> tuple[float, bool, dict[str, dict[str, Any]]]:
    """Weighted mean of the scorers; passed = every scorer passed, or score ≥ threshold when one is set."""
    out: dict[str, dict[str, Any]] = {}
    total = weights = 0.0
    all_passed = True
    for scorer, result in zip(scorers, results):
        value = min(1.0, max(0.0, float(result.value)))
        out[scorer.name] = {"value": value, "passed": bool(result.passed), "explanation": result.explanation}
        total += value * scorer.weight
        weights += scorer.weight
        all_passed = all_passed and bool(result.passed)
    score = total / weights if weights else 0.0
    passed = score >= pass_threshold - 1e-12 if pass_threshold is not None else all_passed
    return score, passed, out
