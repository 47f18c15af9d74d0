"""A dry run: projected tokens and dollars per model, before any request is sent.

Input tokens are counted with the model's own tokenizer where one is at hand
(the HF tokenizer of a local model; tiktoken for OpenAI models when its
encoding is already on disk) and otherwise approximated as characters / 4,
which the output says. Output tokens are projected as ``max_tokens`` × a ratio
(1.0, the default, is the upper bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openbench import registry
from openbench.errors import OpenbenchError
from openbench.records import ChatRequest
from openbench.suite import LoadedSuite, ModelSpec

CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class ModelEstimate:
    model: str
    provider: str
    items: int
    input_tokens: int
    output_tokens: int
    method: str
    cost_usd: float | None
    price_source: str | None
    note: str | None = None


def _counter(spec: ModelSpec, suite: LoadedSuite) -> tuple[Any, str, Any]:
    """The model's token counter (or None), how it counts, and the provider (which says how it is billed)."""
    provider = registry.resolve("provider", spec.provider)(spec, suite.dir)
    count, method = provider.token_counter()
    if count is None and method == "approximation":
        method = f"approximation ({CHARS_PER_TOKEN} characters per token)"
    return count, method, provider


def estimate(suite: LoadedSuite, requests: list[tuple[str, ChatRequest]], models: list[ModelSpec], output_ratio: float = 1.0) -> list[ModelEstimate]:
    from openbench import pricing

    out = []
    for spec in models:
        count, method, provider = _counter(spec, suite)
        tin = 0
        for _, request in requests:
            n = count(request) if count else None
            tin += n if n is not None else request.prompt_chars // CHARS_PER_TOKEN + 1
        tout = int(sum(provider.max_output_tokens(r) for _, r in requests) * output_ratio)
        price = None
        note = None
        if provider.billing() == "per-token":
            price = pricing.resolve_price(spec.provider, spec.model, spec.price)
        elif provider.billing() == "hardware":
            note = "self-hosted: $ comes from measured throughput (openbench cost RUN)"
        from openbench.records import Usage

        cost = pricing.cost(Usage(input_tokens=tin, output_tokens=tout), price, batch=spec.batch_api) if price else None
        out.append(ModelEstimate(spec.id, spec.provider, len(requests), tin, tout, method, cost, price.source if price else None, note))
    return out


def suite_requests(suite: LoadedSuite, limit: int | None = None) -> list[tuple[str, ChatRequest]]:
    """Every request a run would send (per model), rendered from the suite."""
    from openbench.prompts import TemplateError
    from openbench.runner import load_work, repeats_of, request_for

    requests = []
    for task, _, cases in load_work(suite, limit):
        for case in cases:
            try:
                requests += [(task.name, request_for(suite, task, case, k)) for k in range(repeats_of(suite, task))]
            except TemplateError as exc:
                raise OpenbenchError(f"task '{task.name}', case '{case.id}': {exc}") from None
    return requests
