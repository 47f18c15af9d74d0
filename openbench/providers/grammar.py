"""Grammar-constrained decoding for local models: a response format's JSON Schema, enforced token by token.

Uses llguidance (the engine behind vLLM's and SGLang's guidance backends; a 3 MB wheel with no
dependencies). At every decoding step each row's matcher says which tokens keep the output
valid, and the rest get -inf logits; rows without a schema are left alone.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any


# One space after separators and no other whitespace: with free whitespace, small models can pad with
# newlines until max_tokens without closing the object. A schema's "x-guidance" key overrides this.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def available() -> bool:
    return importlib.util.find_spec("llguidance") is not None


class SchemaGrammars:
    """One model's llguidance tokenizer, compiled schemas (compiling takes ~0.5 s each) and mask workers."""

    def __init__(self, hf_tokenizer: Any, vocab_size: int):
        import llguidance

        self.lltokenizer = lltokenizer(hf_tokenizer, vocab_size)
        self.vocab_size = vocab_size
        self.executor = llguidance.LLExecutor()
        self._compiled: dict[str, Any] = {}

    def matcher(self, schema: dict[str, Any]) -> Any:
        import llguidance

        key = json.dumps(schema)  # property order matters: llguidance writes properties in the order given
        if key not in self._compiled:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(key, defaults=JSON_LAYOUT)
            self._compiled[key] = llguidance.LLMatcher(self.lltokenizer, grammar)
        return self._compiled[key].deep_copy()

    def logits_processor(self, schemas: list[dict[str, Any] | None], prompt_len: int) -> SchemaLogits:
        return SchemaLogits(self, [self.matcher(s) if s is not None else None for s in schemas], prompt_len)


class SchemaLogits:
    """A transformers logits processor holding one matcher per batch row (None: unconstrained)."""

    def __init__(self, grammars: SchemaGrammars, matchers: list[Any], prompt_len: int):
        import torch

        self.grammars, self.matchers, self.prompt_len = grammars, matchers, prompt_len
        # 32 tokens per int32, all allowed (-1) until a matcher fills its row. (llguidance.torch is not
        # imported: it torch.compiles a kernel at import, which costs seconds on a small CPU.)
        self.bitmask = torch.full((len(matchers), (grammars.vocab_size + 31) // 32), -1, dtype=torch.int32)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        last = input_ids[:, -1].tolist() if input_ids.shape[1] > self.prompt_len else None
        rows = []
        for row, matcher in enumerate(self.matchers):
            if matcher is None:
                continue
            if last is not None and not matcher.is_stopped():
                matcher.consume_token(last[row])
            rows.append((matcher, row))
        width = self.bitmask.shape[1] * 4
        self.grammars.executor.unsafe_compute_mask_ptr(rows, self.bitmask.data_ptr(), width, len(self.matchers))
        return scores.masked_fill(~self._allowed().to(scores.device), float("-inf"))

    def _allowed(self) -> Any:
        # llguidance's own apply kernel is torch.compile'd (~1 min to compile on a small CPU); unpacking
        # the bitmask here takes well under a millisecond.
        import torch

        shifts = torch.arange(32, dtype=torch.int32)
        bits = (self.bitmask.unsqueeze(-1) >> shifts) & 1
        return bits.reshape(self.bitmask.shape[0], -1)[:, : self.grammars.vocab_size].bool()


def lltokenizer(hf_tokenizer: Any, vocab_size: int) -> Any:
    """llguidance's view of a transformers tokenizer (built once per model: it walks the vocabulary)."""
    import llguidance
    import llguidance.hf

    try:
        return llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size)
    except ValueError:
        # A decoder llguidance does not know (character- or word-level tokenizers): give it each token's text.
        return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_TokenTexts(hf_tokenizer, vocab_size)), n_vocab=vocab_size)


class _TokenTexts:
    """The tokenizer interface llguidance's TokenizerWrapper reads: each token's bytes, specials marked with 0xFF."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        self._tokenizer = tokenizer
        self.eos_token_id, self.bos_token_id = tokenizer.eos_token_id, tokenizer.bos_token_id
        self.special_token_ids = sorted(set(tokenizer.all_special_ids))
        names = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.tokens = [
            b"\xff" + names[i].encode() if i in self.special_token_ids else tokenizer.decode([i]).encode() for i in range(len(names))
        ] + [b"\xff<unused%d>" % i for i in range(len(names), vocab_size)]

    def __call__(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False)
