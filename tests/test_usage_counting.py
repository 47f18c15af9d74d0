"""A server that sends no usage (llama-cpp-python streams): tokens are counted, marked as counted, never guessed."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_helpers import read_run, write_suite
from fakeserver import FakeServer, prompt_words, split_tokens

REPLY = "the answer is forty two"


def _run(srv: FakeServer, model: str, tmp_path: Path, invoke, monkeypatch) -> tuple:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    models = [{"id": "srv", "provider": "openai-compatible", "model": model, "base_url": f"{srv.url}/v1", "max_retries": 0}]
    cases = [{"id": "a", "q": "what is six times seven", "answer": REPLY}]
    suite = write_suite(tmp_path / "suite.yaml", models, cases, prompt="{{ q }}")
    result = invoke("run", suite, "--out", tmp_path / "results")
    outcome = read_run(tmp_path / "results", result.exit_code, result.output)
    assert outcome.exit_code == 0, outcome.output
    return outcome.of("srv")["a"], outcome.output


def test_server_usage_is_recorded_as_server(tmp_path: Path, invoke, monkeypatch) -> None:
    with FakeServer(reply=REPLY) as srv:
        rec, output = _run(srv, "m", tmp_path, invoke, monkeypatch)
    assert rec["usage_source"] == "server" and rec["output_tokens"] == len(split_tokens(REPLY))
    assert "counted the tokens" not in output and "were counted by openbench" not in output


def test_no_usage_is_counted_with_the_servers_tokenize_endpoint(tmp_path: Path, invoke, monkeypatch) -> None:
    with FakeServer(reply=REPLY) as srv:
        srv.send_usage, srv.tokenize = False, True
        rec, output = _run(srv, "m", tmp_path, invoke, monkeypatch)
        asked = [r for r in srv.log if r.path == "/tokenize"]
        request = next(r for r in srv.log if r.path.endswith("/chat/completions"))
    assert rec["usage_source"] == "counted"
    # The server's own counts: what its usage would have said.
    assert rec["output_tokens"] == len(split_tokens(REPLY)) and rec["input_tokens"] == prompt_words(request.body)
    assert len(asked) == 2 and asked[0].body["messages"] == request.body["messages"]
    assert "^" in output and "were counted by openbench" in output and "openbench counted the tokens" in output
    (run_dir,) = (tmp_path / "results").iterdir()
    for fmt in ("md", "html"):  # the reports say it too
        assert invoke("report", run_dir, "--format", fmt).exit_code == 0
        assert "openbench counted the tokens" in (run_dir / f"report.{fmt}").read_text()


def test_no_usage_and_no_endpoint_is_counted_with_the_models_own_tokenizer(tmp_path: Path, invoke, monkeypatch, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    with FakeServer(reply="six seven eight") as srv:
        srv.send_usage = False
        rec, _ = _run(srv, str(tiny_model_dir), tmp_path, invoke, monkeypatch)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert rec["usage_source"] == "counted"
    assert rec["output_tokens"] == len(tok("six seven eight", add_special_tokens=False).input_ids)
    prompt = tok.apply_chat_template([{"role": "user", "content": "what is six times seven"}], add_generation_prompt=True, tokenize=False)
    assert rec["input_tokens"] == len(tok(prompt, add_special_tokens=False).input_ids)


def test_nothing_to_count_with_stays_unknown(tmp_path: Path, invoke, monkeypatch) -> None:
    with FakeServer(reply=REPLY) as srv:
        srv.send_usage = False
        rec, output = _run(srv, "hub-model-not-here", tmp_path, invoke, monkeypatch)
    assert rec["usage_source"] is None and rec["output_tokens"] is None and rec["input_tokens"] is None
    assert "-/-" in output
