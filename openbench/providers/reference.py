"""The ``reference`` provider: answers with a field of the case instead of calling a model.

Run it first to check that a suite's scorers give full marks to known-good
answers before spending money on real models.
"""

from __future__ import annotations

from typing import Any

from openbench.errors import OpenbenchError
from openbench.providers.base import Provider
from openbench.records import ChatRequest, Completion, Usage
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
        text = str(case[self.spec.field])
        if text:
            clock.chunk()
        return Completion(text=text, usage=Usage(input_tokens=0, output_tokens=0), timing=clock.finish(), finish_reason="stop")
