"""OpenAI chat completions (and any OpenAI-compatible server) through the official ``openai`` SDK.

Streaming with ``stream_options.include_usage``; token counts come from the
server's usage chunk (cached and reasoning tokens included where sent).
"""

from __future__ import annotations

import os
from typing import Any

from openbench.errors import MissingDependency, MissingKey, OpenbenchError
from openbench.providers.base import AttemptError, Provider
from openbench.providers.sse import DONE, SENDING, classify, events, http_client, named_parameters, sdk_kwargs, warm_up
from openbench.records import ChatRequest, Completion, Usage
from openbench.timing import AttemptClock


class OpenAIProvider(Provider):
    self_hosted = False
    default_key_env = "OPENAI_API_KEY"

    def __init__(self, spec, suite_dir):
        super().__init__(spec, suite_dir)
        self.client = None
        self._key: str | None = None
        self._create: Any = None
        self._named: frozenset[str] = frozenset()

    def _api_key(self) -> str | None:
        return os.environ.get(self.spec.api_key_env or self.default_key_env) or None

    def _base_url(self) -> str | None:
        return self.spec.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def check(self) -> None:
        try:
            import openai  # noqa: F401
        except ImportError:
            raise MissingDependency("openai", f"The {self.spec.provider} provider") from None
        if not self._api_key():
            raise MissingKey(self.spec.api_key_env or self.default_key_env)

    def cache_identity(self) -> dict[str, Any]:
        return {"provider": self.spec.provider, "model": self.spec.model, "base_url": self._base_url(), "params": self.spec.params}

    async def start(self) -> None:
        import openai

        self._key = self._api_key() or "EMPTY"
        self.client = openai.AsyncOpenAI(
            api_key=self._key, base_url=self._base_url(), max_retries=0, timeout=self.spec.timeout_s,
            http_client=http_client(openai, self.spec.timeout_s),
        )
        self._create = self.client.chat.completions.with_streaming_response.create
        self._named = named_parameters(self._create)
        await warm_up(self.client.models, self.spec.timeout_s)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": s.temperature,
            self._max_tokens_field: s.max_tokens,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if s.top_p is not None:
            body["top_p"] = s.top_p
        if s.stop:
            body["stop"] = list(s.stop)
        body.update(self.spec.params)
        return body

    _max_tokens_field = "max_completion_tokens"

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        import openai

        body = self._body(request)
        parts: list[str] = []
        usage = None
        finish = None
        done = False
        clock.restart()  # restarted again by the transport when the request is really sent
        sending = SENDING.set(clock)
        try:
            async with self._create(**sdk_kwargs(self._named, body)) as response:
                async for event in events(response.iter_lines()):
                    if event is DONE:
                        done = True
                        break
                    if "error" in event and not event.get("choices"):
                        raise AttemptError("server", f"error in stream: {event['error']}", retryable=True)
                    for choice in event.get("choices") or ():
                        delta = choice.get("delta") or {}
                        text = delta.get("content")
                        if text:
                            clock.chunk()
                            parts.append(text)
                        finish = choice.get("finish_reason") or finish
                    if event.get("usage"):
                        usage = event["usage"]
        except Exception as exc:  # noqa: BLE001 - classified below; nothing escapes unclassified
            raise classify(exc, openai, self._key) from None
        finally:
            SENDING.reset(sending)
        timing = clock.finish()
        if not done and finish is None and usage is None:
            raise AttemptError("stream_cut", "the stream ended before a finish reason, usage or [DONE]", retryable=True)
        return Completion(text="".join(parts), usage=_usage(usage), timing=timing, finish_reason=finish)


class OpenAICompatibleProvider(OpenAIProvider):
    """vLLM, SGLang, TGI, Ollama, llama.cpp server, ``transformers serve``: the OpenAI API at ``base_url``."""

    self_hosted = True
    _max_tokens_field = "max_tokens"  # what every compatible server understands

    def _api_key(self) -> str | None:
        return os.environ.get(self.spec.api_key_env) if self.spec.api_key_env else None

    def _base_url(self) -> str | None:
        return self.spec.base_url

    def check(self) -> None:
        try:
            import openai  # noqa: F401
        except ImportError:
            raise MissingDependency("openai", "The openai-compatible provider") from None
        if not self.spec.base_url:
            raise OpenbenchError(f"model '{self.spec.id}': the openai-compatible provider needs base_url (e.g. http://localhost:8000/v1)")
        if self.spec.api_key_env and not self._api_key():
            raise MissingKey(self.spec.api_key_env)


def _usage(raw: dict[str, Any] | None) -> Usage:
    if not raw:
        return Usage()  # the server sent none: unknown, never guessed
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=raw.get("prompt_tokens"),
        output_tokens=raw.get("completion_tokens"),
        cached_input_tokens=prompt_details.get("cached_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )
