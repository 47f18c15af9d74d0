"""The ``fake`` provider: a deterministic stand-in model for trying suites and measuring the harness.

It answers a case field (``params.answer_field``, default ``answer``) correctly
for a fraction ``params.accuracy`` of cases (chosen by a hash of the prompt, so
the same case always gets the same answer) and waits ``params.ttft_s`` and
``params.per_token_s`` to imitate streaming. It costs nothing and needs nothing.
To imitate an unreliable endpoint it times out on a hash-chosen fraction
``params.error_rate`` of cases, and on every case whose field
``params.error_field`` is true.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from openbench.providers.base import AttemptError, Provider
from openbench.records import ChatRequest, Completion, Usage
from openbench.timing import AttemptClock


class FakeProvider(Provider):
    reads_case = True

    def _param(self, name: str, default: Any) -> Any:
        return self.spec.params.get(name, default)

    def cache_identity(self) -> dict[str, Any]:
        # accuracy and answer_field change the answers; the timing parameters do not.
        output_params = {k: v for k, v in self.spec.params.items() if k not in ("ttft_s", "per_token_s")}
        return {**super().cache_identity(), "params": output_params}

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        prompt = "\n".join(m.content for m in request.messages)
        digest = hashlib.sha256((self.spec.model + prompt).encode()).digest()
        right = int.from_bytes(digest[:4], "big") / 2**32 < float(self._param("accuracy", 1.0))
        error_field = self._param("error_field", None)
        if int.from_bytes(digest[4:8], "big") / 2**32 < float(self._param("error_rate", 0.0)) or (
            error_field and case.get(error_field)
        ):
            raise AttemptError("timeout", "the fake model timed out (params.error_rate / error_field)")
        answer = str(case.get(self._param("answer_field", "answer"), ""))
        text = answer if right else f"not {answer}"
        tokens = text.split() or [""]
        ttft, per_token = float(self._param("ttft_s", 0.0)), float(self._param("per_token_s", 0.0))
        if ttft:
            await asyncio.sleep(ttft)
        for i, _ in enumerate(tokens):
            if i and per_token:
                await asyncio.sleep(per_token)
            clock.chunk()
        usage = Usage(input_tokens=len(prompt.split()), output_tokens=len(tokens))
        return Completion(text=text, usage=usage, timing=clock.finish(), finish_reason="stop")
