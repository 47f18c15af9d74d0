"""The ``reference`` provider: answers with a field of the case instead of calling a model.

Run it first to check that a suite's scorers give full marks to known-good
answers before spending money on real models. A field holding
``{"tool_calls": [{"name": ..., "arguments": {...}}]}`` answers with tool calls.
"""

from __future__ import annotations

import json
from typing import Any

from openbench.errors import OpenbenchError
from openbench.providers.base import Provider
from openbench.records import ChatRequest, Completion, ToolCall, Usage
from openbench.timing import AttemptClock


class ReferenceProvider(Provider):
    reads_case = True
    options = frozenset({"field"})

    def billing(self) -> str:
        return "free"

    def check(self) -> None:
        if not self.spec.field:
            raise OpenbenchError(f"model '{self.spec.id}': the reference provider needs `field` (the case field to output)")

    def cache_identity(self) -> dict[str, Any]:
        return {"provider": "reference", "field": self.spec.field}

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        if self.spec.field not in case:
            from openbench.providers.base import AttemptError

            raise AttemptError("bad_request", f"the case has no field '{self.spec.field}'")
        text, calls = reference_answer(case[self.spec.field])
        if text or calls:
            clock.chunk()
        return Completion(
            text=text,
            usage=Usage(input_tokens=0, output_tokens=0),
            timing=clock.finish(),
            finish_reason="tool_calls" if calls else "stop",
            tool_calls=calls,
        )


def reference_answer(value: Any) -> tuple[str, tuple[ToolCall, ...]]:
    """A case field as an answer: ``{"tool_calls": [{name, arguments}], "content": ...}`` calls tools;
    any other mapping or list is answered as JSON text; anything else as its text."""
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        calls = tuple(
            ToolCall(c["name"], c.get("arguments", {}), False, f"call_{i}") for i, c in enumerate(value["tool_calls"]) if isinstance(c, dict) and "name" in c
        )
        return str(value.get("content") or ""), calls
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False), ()
    return str(value), ()
