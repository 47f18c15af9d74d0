"""Counting a local model's prompt tokens from its saved tokenizer files: the same counts as transformers, without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from openbench.providers.tokens import fast_counter
from openbench.records import ChatRequest, Message, Sampling


def _request(*pairs: tuple[str, str]) -> ChatRequest:
    return ChatRequest(tuple(Message(role, text) for role, text in pairs), Sampling())


def test_fast_count_matches_the_transformers_tokenizer(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    count = fast_counter(tiny_model_dir)
    assert count is not None
    for request in (
        _request(("user", "count from one two")),
        _request(("system", "hello system"), ("user", "please count from five")),
        _request(("system", "hello"), ("user", "one two"), ("assistant", "three"), ("user", "four")),
    ):
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert count(request) == len(tok(text, add_special_tokens=False).input_ids) > 0


def test_counting_loads_neither_torch_nor_transformers(tiny_model_dir: Path) -> None:
    code = (
        "import sys, json; from pathlib import Path; from openbench.providers.tokens import fast_counter;"
        "from openbench.records import ChatRequest, Message, Sampling;"
        f"n = fast_counter(Path({str(tiny_model_dir)!r}))(ChatRequest((Message('user', 'count from one'),), Sampling()));"
        "print(json.dumps([n, 'torch' in sys.modules, 'transformers' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, torch_loaded, transformers_loaded = json.loads(out.stdout)
    assert n > 0 and not torch_loaded and not transformers_loaded


def test_no_tokenizer_files_means_no_fast_count(tmp_path: Path) -> None:
    assert fast_counter(tmp_path) is None
