"""Token counts for answers from servers that send no usage (llama-cpp-python's streams, some gateways).

Counts come from the server's own tokenize endpoint where it has one (vLLM ``/tokenize``,
llama.cpp's ``/apply-template`` + ``/tokenize``, llama-cpp-python ``/extras/tokenize``), else from
the model's own tokenizer when the model is a local folder or GGUF file. A figure nothing can
count stays unknown (``None``), never guessed; counted figures carry ``source="counted"``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

from openbench.records import ChatRequest, Usage


class UsageCounter:
    """Counts a request's prompt tokens and an answer's tokens, trying each method until one answers.

    ``methods``: the names in ``METHODS`` order of preference. A method that fails once (no such
    endpoint, no tokenizer) is not asked again.
    """

    def __init__(self, root_url: str, model: str, methods: tuple[str, ...], tokenizer_path: tuple[str, str | None] | None):
        self.root_url, self.model = root_url.rstrip("/"), model
        self.methods = [m for m in methods if m != "tokenizer" or tokenizer_path is not None]
        self.tokenizer_path = tokenizer_path
        self._tok: Any = None
        self._lock = asyncio.Lock()

    async def usage(self, request: ChatRequest, text: str) -> Usage:
        async with self._lock:  # one count at a time: the endpoints and the tokenizer are shared
            counted_in, counted_out = await asyncio.to_thread(self._count, request, text)
        if counted_in is None and counted_out is None:
            return Usage()
        return Usage(input_tokens=counted_in, output_tokens=counted_out, source="counted")

    def _count(self, request: ChatRequest, text: str) -> tuple[int | None, int | None]:
        counted_in = counted_out = None
        for name in list(self.methods):
            try:
                got_in, got_out = getattr(self, f"_{name.replace('.', '_').replace('-', '_')}")(request, text)
            except (OSError, ValueError, KeyError, TypeError, ImportError):
                self.methods.remove(name)
                continue
            counted_in = counted_in if counted_in is not None else got_in
            counted_out = counted_out if counted_out is not None else got_out
            if counted_in is not None and counted_out is not None:
                break
        return counted_in, counted_out

    # -- methods -------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.root_url + path, data=data, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read())

    def _vllm(self, request: ChatRequest, text: str) -> tuple[int | None, int | None]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        counted_in = self._post("/tokenize", {"model": self.model, "messages": messages, "add_generation_prompt": True})
        counted_out = self._post("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})
        return _tokens(counted_in), _tokens(counted_out)

    def _llama_server(self, request: ChatRequest, text: str) -> tuple[int | None, int | None]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        prompt = self._post("/apply-template", {"messages": messages})["prompt"]
        counted_in = self._post("/tokenize", {"content": prompt, "add_special": True})
        counted_out = self._post("/tokenize", {"content": text, "add_special": False})
        return _tokens(counted_in), _tokens(counted_out)

    def _llama_cpp_python(self, request: ChatRequest, text: str) -> tuple[int | None, int | None]:
        # It tokenizes plain text only: the prompt's chat template is unknown to it, so only the answer is counted.
        return None, _tokens(self._post("/extras/tokenize", {"input": text, "model": self.model}))

    def _tokenizer(self, request: ChatRequest, text: str) -> tuple[int | None, int | None]:
        tok = self._load_tokenizer()
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if getattr(tok, "chat_template", None):
            prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            prompt = "\n\n".join(m["content"] for m in messages) + "\n"
        return len(tok(prompt, add_special_tokens=False).input_ids), len(tok(text, add_special_tokens=False).input_ids)

    def _load_tokenizer(self) -> Any:
        if self._tok is None:
            from transformers import AutoTokenizer

            folder, gguf = self.tokenizer_path
            self._tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(folder)
        return self._tok


#: Method names, tried in this order: the server's endpoints first (its own tokenizer), then the model's.
METHODS = ("vllm", "llama-server", "llama-cpp-python", "tokenizer")
#: The methods worth trying for a launched engine; an unknown server is probed with every method.
ENGINE_METHODS = {
    "vllm": ("vllm", "tokenizer"),
    "sglang": ("tokenizer",),
    "llama.cpp": ("llama-server", "llama-cpp-python", "tokenizer"),
    "transformers": ("tokenizer",),
}


def _tokens(answer: Any) -> int:
    if isinstance(answer, dict) and isinstance(answer.get("count"), int):
        return answer["count"]
    return len(answer["tokens"])


def local_tokenizer(model: str) -> tuple[str, str | None] | None:
    """(folder, GGUF file name) when ``model`` is a local model folder or GGUF file; None otherwise."""
    path = Path(model)
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir() and (path / "tokenizer_config.json").exists():
        return str(path), None
    return None
