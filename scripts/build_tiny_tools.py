#!/usr/bin/env python
"""Build ``tiny-tools``: a deterministic tiny causal LM whose chat template declares tools and
which answers in the Hermes/Qwen tool-call format, for testing the hf provider's tool path.

No training: a 2-layer Llama with one-hot embeddings and an lm_head set to a bigram table, so
greedy decoding follows the table (the random layers perturb the residual stream far less
than the head's margin). The template renders the conversation with no generation suffix, so
the prompt's last word picks the answer:

* an order number (one of ``ORDER_IDS``) →
  ``<tool_call>{"arguments":{"order_id":"48213"}, "name": "lookup_order"}</tool_call>``
* any other word → ``You're welcome.`` (plain text, no tool call)

Usage::

    python scripts/build_tiny_tools.py [--out suites/models/tiny-tools]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")

REPO = Path(__file__).resolve().parent.parent
ORDER_IDS = ["48213", "77105", "30052", "90417", "61128", "12345"]
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
# Tool names are listed inside <tools> ... </tools>; each turn is "role: content".
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if tools %}<tools> {% for t in tools %}{{ t['function']['name'] if t['function'] is defined else t['name'] }} {% endfor %}</tools> {% endif -%}"
    "{%- for m in messages %}{{ m['role'] }}: {{ m['content'] or '' }} {% endfor -%}"
)
HIDDEN = 48


def chains() -> dict[str, str]:
    """The bigram table: each word's one successor ("</s>" ends the answer)."""
    table = {"<unk>": "You're", "You're": "welcome.", "welcome.": "</s>"}
    for order_id in ORDER_IDS:
        call = f'<tool_call>{{"arguments":{{"order_id":"{order_id}"}},'
        table[order_id] = call
        table[call] = '"name":'
    table['"name":'] = '"lookup_order"}</tool_call>'
    table['"lookup_order"}</tool_call>'] = "</s>"
    return table


def bigram_llama(tokenizer: Any, successor: dict[int, int], hidden: int, max_positions: int = 256) -> Any:
    """A 2-layer Llama whose greedy next token is ``successor[current token]``, with live (random) attention and MLPs.

    One-hot embeddings carry the current token through the residual stream; the random layers
    (std 0.02) perturb it far less than the lm_head margin, so argmax is the table.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    size = len(tokenizer.get_vocab())
    assert size <= hidden, "one-hot embeddings need a vocabulary no larger than the hidden size"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
        head = torch.zeros(size, hidden)
        for tok, nxt in successor.items():
            head[nxt, tok] = 10.0
        model.lm_head.weight.copy_(head)
    return model


def build(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    table = chains()
    words = ["<tools>", "</tools>", "lookup_order", "system:", "user:", "assistant:", "tool:"]
    vocab_words = SPECIALS + sorted({w for pair in table.items() for w in pair if w not in SPECIALS} | set(words))
    vocab = {w: i for i, w in enumerate(vocab_words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE

    successor = {tok: vocab[table.get(word, table["<unk>"])] for word, tok in vocab.items()}
    model = bigram_llama(tokenizer, successor, HIDDEN, max_positions=512)
    model.generation_config.eos_token_id = vocab["</s>"]
    model.generation_config.pad_token_id = vocab["<pad>"]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "suites" / "models" / "tiny-tools")
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
