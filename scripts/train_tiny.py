#!/usr/bin/env python
"""Train two tiny character-level causal LMs for openbench's offline demos and tests.

Both models learn the same two tasks:

* 2-digit addition:   user prompt ``"37+45="``        -> answer ``"82"``
* string reversal:    user prompt ``"reverse abc"``   -> answer ``"cba"``  (3-6 lowercase letters)

``tiny-base`` (~0.5M parameters, a few minutes on 2 CPU cores) solves both tasks on
held-out items; ``tiny-small`` (~0.08M parameters, ~20 s) is deliberately weak.  The
pair gives a *measured* quality gap for model-switch / regression-gate demos.

Everything is seeded, so a rerun on the same torch version reproduces the same data
files and (up to CPU kernel nondeterminism) the same checkpoints.

Inference protocol the checkpoints are trained for (the openbench ``hf`` provider)::

    text = tok.apply_chat_template([{"role": "user", "content": prompt}],
                                   add_generation_prompt=True, tokenize=False)
    enc = tok(texts, add_special_tokens=False, return_tensors="pt", padding=True)  # left padding
    out = model.generate(**enc, do_sample=False, max_new_tokens=8,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    answer = tok.decode(out[i, enc.input_ids.shape[1]:], skip_special_tokens=True).strip()

Usage::

    python scripts/train_tiny.py [--out suites/models] [--data suites/data] [--only base|small]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import string
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

DATA_SEED = 1234
N_EVAL = 40
MAX_NEW_TOKENS = 8  # longest answer is 6 chars (+ eos); 8 leaves slack

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"

# Renders only the (last) user message; system/assistant messages are ignored because
# the models are single-turn.  "<s>Q:{prompt}\nA:" followed by the answer and "</s>".
CHAT_TEMPLATE = (
    "{%- set ns = namespace(user='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{%- set ns.user = message['content'] -%}{%- endif -%}"
    "{%- endfor -%}"
    "{{ bos_token }}{{ 'Q:' + (ns.user | trim) + '\n' }}"
    "{%- if add_generation_prompt -%}{{ 'A:' }}{%- endif -%}"
)

# name -> (LlamaConfig overrides, training hyper-parameters)
MODELS = {
    "base": (
        dict(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=4),
        dict(steps=2000, batch_size=64, lr=2e-3, seed=1, p_add=0.65),
    ),
    "small": (
        dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=2),
        dict(steps=800, batch_size=48, lr=6e-3, seed=2, p_add=0.5),
    ),
}


# --------------------------------------------------------------------------- data

def reversal_prompt(word: str) -> str:
    return f"reverse {word}"


def sample_operand(rng: random.Random) -> int:
    # Oversample 1-digit operands: uniform over 0..99 alone gives them 10%, and
    # prompts such as "1+1=" then fail.
    return rng.randint(0, 9) if rng.random() < 0.3 else rng.randint(10, 99)


def sample_word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 6)))


def make_eval_sets(seed: int = DATA_SEED) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    addition: list[dict] = []
    seen: set[str] = set()
    while len(addition) < N_EVAL:
        a, b = sample_operand(rng), sample_operand(rng)
        q = f"{a}+{b}="
        if q in seen:
            continue
        seen.add(q)
        addition.append({"id": f"add-{len(addition):03d}", "question": q, "answer": str(a + b)})
    reversal: list[dict] = []
    words: set[str] = set()
    while len(reversal) < N_EVAL:
        w = sample_word(rng)
        if w in words or w == w[::-1]:
            continue
        words.add(w)
        reversal.append({"id": f"rev-{len(reversal):03d}", "word": w,
                         "prompt": reversal_prompt(w), "answer": w[::-1]})
    return addition, reversal


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def training_example(rng: random.Random, held_out: set[str], p_add: float = 0.5) -> tuple[str, str]:
    """One (prompt, answer) pair, never one of the held-out prompts."""
    while True:
        if rng.random() < p_add:
            a, b = sample_operand(rng), sample_operand(rng)
            prompt, answer = f"{a}+{b}=", str(a + b)
        else:
            w = sample_word(rng)
            prompt, answer = reversal_prompt(w), w[::-1]
        if prompt not in held_out:
            return prompt, answer


# ---------------------------------------------------------------------- tokenizer

def build_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer: one token per printable ASCII char (plus \\n, \\t)."""
    specials = [PAD, BOS, EOS, UNK]
    chars = [c for c in string.printable if c not in "\r\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    # BPE with no merges == character-level; unknown characters map to <unk>.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    core.add_special_tokens(specials)
    core.decoder = decoders.Fuse()  # concatenate characters back without spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        padding_side="left",
        model_max_length=128,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def prompt_text(tok: PreTrainedTokenizerFast, prompt: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": prompt}],
                                   add_generation_prompt=True, tokenize=False)


# -------------------------------------------------------------------------- model

def build_model(tok: PreTrainedTokenizerFast, overrides: dict) -> LlamaForCausalLM:
    cfg = LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=128,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **overrides,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.do_sample = False
    model.generation_config.max_new_tokens = MAX_NEW_TOKENS
    return model


def make_batch(tok, pairs: list[tuple[str, str]], rng: random.Random):
    """Left-padded batch exactly as at inference: template ids + answer ids + eos.

    Extra random left padding (0-4 pads) makes the model robust to any amount of
    padding in mixed-length inference batches; position ids start at 0 on the first
    real token, as ``generate`` computes them from the attention mask.
    """
    seqs, n_prompt = [], []
    for prompt, answer in pairs:
        p = tok(prompt_text(tok, prompt), add_special_tokens=False)["input_ids"]
        a = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(p + a)
        n_prompt.append(len(p))
    extra = [rng.randint(0, 4) for _ in seqs]
    width = max(len(s) + e for s, e in zip(seqs, extra))
    ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, n) in enumerate(zip(seqs, n_prompt)):
        off = width - len(s)
        ids[i, off:] = torch.tensor(s)
        mask[i, off:] = 1
        labels[i, off + n:] = torch.tensor(s[n:])  # loss on answer + eos only
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, pos, labels


def train(name: str, tok, held_out: set[str], log_every: int = 250) -> tuple[LlamaForCausalLM, float]:
    overrides, hp = MODELS[name]
    random.seed(hp["seed"])
    torch.manual_seed(hp["seed"])
    rng = random.Random(hp["seed"])
    model = build_model(tok, overrides)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[{name}] {n_params:,} parameters; {hp['steps']} steps x batch {hp['batch_size']}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, hp["steps"] // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, hp["steps"] - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    t0 = time.perf_counter()
    for step in range(hp["steps"]):
        pairs = [training_example(rng, held_out, hp["p_add"]) for _ in range(hp["batch_size"])]
        ids, mask, pos, labels = make_batch(tok, pairs, rng)
        loss = model(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step == 0:
            print(f"[{name}] step {step + 1:5d}  loss {loss.item():.4f}  "
                  f"{time.perf_counter() - t0:6.1f}s", flush=True)
    elapsed = time.perf_counter() - t0
    model.eval()
    return model, elapsed


# --------------------------------------------------------------------- evaluation

@torch.no_grad()
def generate_answers(model, tok, prompts: list[str], batch_size: int = 64) -> list[str]:
    """The openbench hf-provider protocol: chat template, left padding, greedy."""
    out_answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        texts = [prompt_text(tok, p) for p in prompts[start:start + batch_size]]
        enc = tok(texts, add_special_tokens=False, return_tensors="pt", padding=True)
        out = model.generate(**enc, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        n = enc.input_ids.shape[1]
        out_answers += [tok.decode(out[i, n:], skip_special_tokens=True).strip() for i in range(len(texts))]
    return out_answers


def evaluate(model, tok, addition: list[dict], reversal: list[dict]) -> dict:
    prompts = [r["question"] for r in addition] + [r["prompt"] for r in reversal]
    gold = [r["answer"] for r in addition] + [r["answer"] for r in reversal]
    batched = generate_answers(model, tok, prompts)  # one mixed-length batch of 80
    single = [generate_answers(model, tok, [p])[0] for p in prompts]
    n_add = len(addition)
    return {
        "addition": sum(a == g for a, g in zip(batched[:n_add], gold[:n_add])) / n_add,
        "reversal": sum(a == g for a, g in zip(batched[n_add:], gold[n_add:])) / len(reversal),
        "batched_equals_unbatched": batched == single,
        "mismatches": [(p, b, s) for p, b, s in zip(prompts, batched, single) if b != s],
    }


# --------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "suites" / "models",
                    help="folder that receives tiny-base/ and tiny-small/")
    ap.add_argument("--data", type=Path, default=REPO / "suites" / "data",
                    help="folder that receives addition.jsonl and reversal.jsonl (held-out items)")
    ap.add_argument("--only", choices=sorted(MODELS), help="train only one of the two models")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)

    addition, reversal = make_eval_sets()
    write_jsonl(args.data / "addition.jsonl", addition)
    write_jsonl(args.data / "reversal.jsonl", reversal)
    held_out = {r["question"] for r in addition} | {r["prompt"] for r in reversal}
    print(f"wrote {len(addition)} + {len(reversal)} held-out items to {args.data}")

    tok = build_tokenizer()
    results = {}
    for name in [args.only] if args.only else ["base", "small"]:
        model, elapsed = train(name, tok, held_out)
        folder = args.out / f"tiny-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)
        res = evaluate(model, tok, addition, reversal)
        res["params"] = sum(p.numel() for p in model.parameters())
        res["train_s"] = elapsed
        results[name] = res
        print(f"[{name}] saved to {folder}")

    print("\nheld-out accuracy (batched, left-padded, greedy):")
    for name, r in results.items():
        print(f"  tiny-{name:5s} params={r['params']:>8,}  train={r['train_s']:6.1f}s  "
              f"addition={r['addition']:.3f}  reversal={r['reversal']:.3f}  "
              f"batched==unbatched={r['batched_equals_unbatched']}")
        for p, b, s in r["mismatches"][:5]:
            print(f"    mismatch {p!r}: batched={b!r} single={s!r}")


if __name__ == "__main__":
    main()
