"""Tools on the hf provider: offered through the chat template, parsed back from the Hermes/Qwen
``<tool_call>`` format, and refused at load time by a model whose template cannot take them.

Proven on suites/models/tiny-tools (scripts/build_tiny_tools.py): a deterministic tiny model whose
template lists the tools and which calls lookup_order when the message ends with an order number.
"""

from __future__ import annotations

import json
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent / "suites" / "models"

SUITE = """
name: hf-tools
models:
  - {{id: tiny-tools, provider: hf, model: {tools}, batch_size: 4}}
  - {{id: tiny-base, provider: hf, model: {base}}}
tasks:
  - name: lookup
    prompt: "Where is order {{{{ order_id }}}}"
    tools:
      - name: lookup_order
        description: Look up an order.
        parameters: {{type: object, properties: {{order_id: {{type: string}}}}, required: [order_id]}}
    data:
      cases:
        - {{id: a, order_id: "48213"}}
        - {{id: b, order_id: "77105"}}
        - {{id: c, order_id: "30052"}}
    scorers:
      - {{type: tool_call, name: lookup_order, arguments: {{order_id: "{{{{ order_id }}}}"}}}}
  - name: thanks
    messages:
      - {{role: user, content: "Where is order 48213"}}
      - {{role: assistant, content: "It is on its way."}}
      - {{role: user, content: "{{{{ message }}}}"}}
    tools:
      - name: lookup_order
        parameters: {{type: object, properties: {{order_id: {{type: string}}}}}}
    data:
      cases: [{{id: t, message: "thanks!"}}]
    scorers: [{{type: no_tool_call}}]
"""


def test_hf_tool_calls_through_the_chat_template(write_suite, invoke, tmp_path: Path) -> None:
    path = write_suite(SUITE.format(tools=MODELS / "tiny-tools", base=MODELS / "tiny-base"))
    out = tmp_path / "out"
    result = invoke("run", path, "--out", out)
    assert result.exit_code == 1, result.output  # tiny-base cannot take tools: it fails, so the run says so
    (run_dir,) = list(out.iterdir())
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {r["model"] for r in records} == {"tiny-tools"}
    for rec in records:
        assert rec["error"] is None and rec["passed"] is True, rec
        if rec["task"] == "lookup":
            order_id = {"a": "48213", "b": "77105", "c": "30052"}[rec["case_id"]]
            assert rec["tool_calls"] == [{"name": "lookup_order", "arguments": {"order_id": order_id}, "invalid_json": False, "id": None}]
            assert rec["output"] == "" and rec["finish_reason"] == "tool_calls"
            assert rec["ttft_s"] is not None and rec["output_tokens"] == 4  # three words and the end token
        else:
            assert rec["tool_calls"] is None and rec["output"] == "You're welcome."
    base = next(m for m in manifest["models"] if m["id"] == "tiny-base")
    assert base["status"] == "failed"
    assert "chat template has no tool support" in base["reason"] and "lookup, thanks" in base["reason"]


def test_tagged_tool_calls_are_parsed_and_bad_ones_kept_raw() -> None:
    from openbench.providers.chatformat import parse_tagged_tool_calls

    text, calls = parse_tagged_tool_calls(
        'Let me check.\n<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "1"}}\n</tool_call>\n'
        '<tool_call>{"name": "ping", "arguments": "{\\"a\\": 2}"}</tool_call><tool_call>{"name": "cut", "arguments": {"x": '
    )
    assert text == "Let me check."
    assert [(c.name, c.arguments, c.invalid_json) for c in calls] == [
        ("lookup_order", {"order_id": "1"}, False),
        ("ping", {"a": 2}, False),
        ("cut", '{"name": "cut", "arguments": {"x":', True),
    ]


GRAMMAR_SUITE = """
name: hf-grammar
models:
  - {{id: free, provider: hf, model: {base}, constrained_decoding: false}}
  - {{id: held, provider: hf, model: {base}}}
tasks:
  - name: sum
    prompt: "{{{{ a }}}}+{{{{ b }}}}="
    max_tokens: 24
    response_format:
      json_schema: &s {{type: object, properties: {{sum: {{type: integer, minimum: 0, maximum: 198}}}}, required: [sum], additionalProperties: false}}
    data:
      cases: [{{id: "1", a: 37, b: 45}}, {{id: "2", a: 12, b: 30}}]
    scorers:
      - {{type: json_schema, schema: *s}}
"""


def test_hf_grammar_holds_answers_to_the_schema(write_suite, invoke, tmp_path: Path) -> None:
    """tiny-base answers "82" to "37+45="; held to {"sum": integer} by constrained decoding, it must write an object.

    (tiny-base's character-level tokenizer also exercises the per-token fallback for decoders llguidance does not know.)"""
    import pytest

    pytest.importorskip("llguidance")
    path = write_suite(GRAMMAR_SUITE.format(base=MODELS / "tiny-base"))
    out = tmp_path / "out"
    result = invoke("run", path, "--out", out)
    assert result.exit_code == 0, result.output
    (run_dir,) = list(out.iterdir())
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    manifest = {m["id"]: m for m in json.loads((run_dir / "manifest.json").read_text())["models"]}
    free = [r for r in records if r["model"] == "free"]
    held = [r for r in records if r["model"] == "held"]
    assert len(free) == len(held) == 2, manifest
    assert all(not r["passed"] and r["structured_output"] == "not_sent" for r in free)
    assert all(r["passed"] and r["structured_output"] == "grammar" for r in held), [r["output"] for r in held]
    assert all(isinstance(json.loads(r["output"])["sum"], int) for r in held)
    assert manifest["held"]["structured_output"] == {"sum": {"mode": "grammar", "enforced": True}}
    assert manifest["free"]["structured_output"] == {"sum": {"mode": "not_sent", "enforced": False}}


def test_tool_call_tags_survive_when_the_tokenizer_marks_them_special() -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from openbench.providers.chatformat import decode_keeping_tool_tags, parse_tagged_tool_calls

    words = ["<pad>", "</s>", "<tool_call>", "</tool_call>", '{"name":', '"ping",', '"arguments":', "{}}", "ok"]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", additional_special_tokens=["<tool_call>", "</tool_call>"]
    )
    ids = tok.encode('ok <tool_call> {"name": "ping", "arguments": {}} </tool_call> </s>')
    assert "<tool_call>" not in tok.decode(ids, skip_special_tokens=True)  # what a plain decode would lose
    text, calls = parse_tagged_tool_calls(decode_keeping_tool_tags(tok, ids))
    assert text == "ok" and [(c.name, c.arguments) for c in calls] == [("ping", {})]
