"""OpenAI chat completions (and any OpenAI-compatible server) through the official ``openai`` SDK.

Streaming with ``stream_options.include_usage``; token counts come from the
server's usage chunk (cached and reasoning tokens included where sent).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from openbench.errors import OpenbenchError
from openbench.providers.base import AttemptError, Provider
from openbench.providers.sse import DONE, SDKProvider, batches, decode, throttle_from
from openbench.providers.chatformat import OpenAIToolCallDeltas, openai_messages, openai_tool_fields
from openbench.records import ChatRequest, Completion, StructuredMode, Usage
from openbench.timing import AttemptClock

SERVED_COPY_DTYPE = "float32"  # the plain copy of a GGUF model for an engine that cannot read GGUF


class OpenAIProvider(SDKProvider):
    sdk_name, key_env, base_url_env = "openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"
    default_endpoint, vendor = "https://api.openai.com/v1", "openai"
    options = SDKProvider.options | {"sampling", "reasoning_effort"}

    def _client(self, sdk: Any, **kwargs: Any) -> Any:
        return sdk.AsyncOpenAI(**kwargs)

    def token_counter(self) -> tuple[Any, str]:
        enc = _tiktoken_encoding(self.spec.model)
        if enc is None:
            return None, "approximation"
        # Chat formatting adds about 3 tokens per message and 3 to prime the reply.
        return (lambda r: sum(len(enc.encode(m.content)) + 3 for m in r.messages) + 3), "tiktoken"

    api_path = "/chat/completions"

    def _body(self, request: ChatRequest, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": openai_messages(request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            self._max_tokens_field: request.sampling.max_tokens,
        }
        body.update((name, value) for name, value in params.items() if value is not None)
        if self.spec.reasoning_effort is not None:
            body["reasoning_effort"] = self.spec.reasoning_effort
        body.update(openai_tool_fields(request))
        body.update(self.spec.params)
        return body

    _max_tokens_field = "max_completion_tokens"

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        return await self._exchange(request, clock, lambda response: self._read(response, clock, request))

    async def _read(self, response: Any, clock: AttemptClock, request: ChatRequest) -> Completion:
        parts: list[str] = []
        tool_deltas = OpenAIToolCallDeltas()
        usage = None
        finish = None
        done = False
        last = None
        async for at, found in batches(response.chunks):
            last = at
            for _, payload in found:
                event = decode(payload)
                if event is DONE:
                    done = True
                    break
                if event is None:
                    continue
                if "error" in event and not event.get("choices"):
                    raise AttemptError("server", f"error in stream: {event['error']}", retryable=True)
                for choice in event.get("choices") or ():
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                    if text:
                        clock.chunk(at)
                        parts.append(text)
                    elif delta.get("reasoning_content") or delta.get("reasoning"):
                        clock.thought(at)  # servers that stream the reasoning (vLLM, SGLang) show when it began
                    if delta.get("tool_calls") and tool_deltas.add(delta["tool_calls"]):
                        clock.chunk(at)  # a tool-call delta is the model's first token as much as text is
                    finish = choice.get("finish_reason") or finish
                if event.get("usage"):
                    usage = event["usage"]
            if done:
                break
        timing = clock.finish(last)  # E2E ends when the last read arrived
        if not done and finish is None and usage is None:
            raise AttemptError("stream_cut", "the stream ended before a finish reason, usage or [DONE]", retryable=True)
        return Completion(
            text="".join(parts),
            usage=_usage(usage),
            timing=timing,
            finish_reason=finish,
            throttle_s=throttle_from(response.headers),
            tool_calls=tool_deltas.calls(),
            structured_output=self._structured_mode if request.response_format else None,
        )

    #: A strict json_schema response format is enforced by OpenAI itself.
    _structured_mode = StructuredMode.STRICT


class OpenAICompatibleProvider(OpenAIProvider):
    """vLLM, SGLang, TGI, Ollama, llama.cpp server, ``transformers serve``: the OpenAI API at ``base_url``,
    or on an engine that openbench launches itself (``launch:``, see engines.py).

    When the server sends no usage, tokens are counted (see counting.py) and marked as counted.
    """

    key_env = None  # a key is optional here
    options = frozenset({"base_url", "api_key_env", "sampling", "reasoning_effort", "launch"})
    default_endpoint, vendor = None, None  # no vendor default: the endpoint is the point
    _max_tokens_field = "max_tokens"  # what every compatible server understands
    # vLLM and SGLang enforce response_format; other servers may ignore it, so it counts as requested only.
    _structured_mode = StructuredMode.REQUESTED

    def __init__(self, spec: Any, suite_dir: Any):
        super().__init__(spec, suite_dir)
        self.engine: Any = None  # engines.EngineProcess while a launched engine runs
        self._counter: Any = None

    def billing(self) -> str:
        return Provider.billing(self)

    def _api_key(self) -> str | None:
        return os.environ.get(self.spec.api_key_env) if self.spec.api_key_env else None

    def _base_url(self) -> str | None:
        if self.engine is not None:
            return f"{self.engine.base_url}/v1"
        return self.spec.base_url

    def _served(self) -> tuple[str, tuple[str, str] | None]:
        """What a launched engine loads (``launch.model`` or the model's ``model``, local paths made absolute), and
        the GGUF file (folder, name) to dequantise first when the engine cannot read GGUF: it then loads the
        file's plain transformers copy, made once by ``start`` and reused."""
        from openbench.engines import ENGINES
        from openbench.providers.hf import PKG_SCHEME, _copy_folder, resolve_model_path

        model = self.spec.launch.model or self.spec.model
        if not (model.startswith(PKG_SCHEME) or (self.suite_dir / model).exists() or Path(model).expanduser().exists()):
            return model, None  # a hub id
        folder, gguf = resolve_model_path(model, None, self.suite_dir)
        if gguf is None:
            return folder, None
        if ENGINES[self.spec.launch.engine].reads_gguf:
            return str(Path(folder) / gguf), None
        return str(_copy_folder(folder, gguf, SERVED_COPY_DTYPE)), (folder, gguf)

    def _served_model(self) -> str:
        return self._served()[0]

    def _request_model(self) -> str:
        # An engine launched on the model's own `model` serves it under the resolved path.
        launch = self.spec.launch
        return self._served_model() if launch is not None and launch.model is None else self.spec.model

    def check(self) -> None:
        launch = self.spec.launch
        if launch is not None:
            from openbench.engines import engine_command

            if self.spec.base_url:
                raise OpenbenchError(f"model '{self.spec.id}': give base_url or launch, not both (a launched engine gets its own address)")
            engine_command(launch.engine, self._served_model(), 0, [])  # MissingDependency when the engine is not installed
        elif not self.spec.base_url:
            raise OpenbenchError(
                f"model '{self.spec.id}': the openai-compatible provider needs base_url (e.g. http://localhost:8000/v1) or launch"
            )
        if self.spec.api_key_env:  # a key is optional here, but one that is named must be set
            super().check()

    def cache_identity(self) -> dict[str, Any]:
        launch = self.spec.launch
        if launch is None:
            return super().cache_identity()
        # A launched engine's port changes every run; what it serves and how does not.
        engine = {"engine": launch.engine, "model": self._served_model(), "args": launch.args}
        return {"provider": self.spec.provider, "model": self.spec.model, "launch": engine, "params": self.spec.params}

    def loading_message(self) -> str | None:
        launch = self.spec.launch
        return f"starting {launch.engine} for {self._served_model()} ..." if launch is not None else None

    async def start(self) -> None:
        launch = self.spec.launch
        if launch is not None:
            from openbench.engines import EngineProcess

            served, gguf = self._served()
            if gguf is not None:
                import torch

                from openbench.providers.hf import _dequantised_copy

                await asyncio.to_thread(_dequantised_copy, *gguf, getattr(torch, SERVED_COPY_DTYPE))
            folder = self.run_dir or Path.cwd()
            log = folder / f"engine-{re.sub(r'[^A-Za-z0-9_.-]+', '_', self.spec.id)}.log"
            self.engine = EngineProcess(launch.engine, served, launch.args, launch.env, log, launch.port)
            try:
                self.engine.start()  # on this (the run's) thread: the engine dies with it
                await self.engine.wait_ready(launch.startup_timeout_s)
            except BaseException:
                self.engine.stop()
                raise
        try:
            await super().start()
        except BaseException:
            await self.close()
            raise
        self._counter = self._usage_counter()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self.engine is not None:
                self.engine.stop()

    def engine_info(self) -> Any:
        return self.engine.info() if self.engine is not None else None

    def _usage_counter(self) -> Any:
        from openbench.providers.counting import ENGINE_METHODS, METHODS, UsageCounter, local_tokenizer

        launch = self.spec.launch
        methods = ENGINE_METHODS[launch.engine] if launch is not None else METHODS
        served = self._served_model() if launch is not None else str(self.suite_dir / self.spec.model)
        root = re.sub(r"/v1/?$", "", self._base_url() or "")
        return UsageCounter(root, self._request_model(), methods, local_tokenizer(served))

    def _body(self, request: ChatRequest, params: dict[str, Any]) -> dict[str, Any]:
        body = super()._body(request, params)
        if self.spec.launch is not None:
            body["model"] = self._request_model()
        return body

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        completion = await super().complete(request, clock, case)
        if completion.usage.output_tokens is None and self._counter is not None:
            # The server sent no usage: count after the clock has stopped, and say the figures were counted.
            completion = dataclasses.replace(completion, usage=await self._counter.usage(request, completion.text))
        return completion


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
        source="server",
    )


def _tiktoken_encoding(model: str) -> Any:
    """A tiktoken encoder if its files are already cached locally (tiktoken would otherwise download them)."""
    from pathlib import Path

    try:
        import tiktoken
    except ImportError:
        return None
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "data-gym-cache")
    if not Path(cache).is_dir() or not any(Path(cache).iterdir()):
        return None
    try:
        return tiktoken.encoding_for_model(model)
    except Exception:  # noqa: BLE001 - unknown model or missing file: fall back to the approximation
        return None
