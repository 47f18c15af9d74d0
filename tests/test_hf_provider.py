"""The hf provider on a tiny local Llama: batched generation equals unbatched, each item keeps its own
timing and token count, one failing item fails alone, and pkg:// model paths resolve."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from time import perf_counter

import pytest

from openbench.errors import OpenbenchError
from openbench.providers.hf import HFProvider, resolve_model_path

# Tests that load the tiny model pay ~5 s once for importing torch and transformers.
slow = pytest.mark.slow

SYSTEM = "be brief"
# The tiny model counts on from the prompt's last word (see conftest), so these prompts have
# different lengths (left padding matters) and answers of 9, 4, 2 and 6 tokens (EOS included).
PROMPTS = {
    "p1": "hello",
    "p2": "please count from five",
    "p3": "count from seven",
    "p4": "hello hello count from three",
}


def hf_suite(model_dir: Path, prompts: dict[str, str], batch_size: int = 4, max_tokens: int = 16) -> str:
    cases = "\n".join(f'        - {{id: {cid}, text: "{text}"}}' for cid, text in prompts.items())
    return f"""\
name: tiny
defaults:
  system: {SYSTEM}
  max_tokens: {max_tokens}
models:
  - id: tiny
    provider: hf
    model: {model_dir}
    batch_size: {batch_size}
tasks:
  - name: count
    prompt: "{{{{ text }}}}"
    data:
      cases:
{cases}
    scorers:
      - type: contains
        expected: eight
"""


def run_suite(invoke, write_suite, tmp_path: Path, text: str) -> tuple[Path, dict[str, dict]]:
    out = tmp_path / "out"
    result = invoke("run", write_suite(text), "--out", out)
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    records = {r["case_id"]: r for r in map(json.loads, (run_dir / "records.jsonl").read_text().splitlines())}
    return run_dir, records


@pytest.fixture
def batches(monkeypatch) -> list[dict]:
    """Spy on HFProvider._generate: which prompts went together, and the batch's wall time."""
    calls: list[dict] = []
    original = HFProvider._generate

    def spy(self, requests, sampling, clocks):
        start = perf_counter()
        out = original(self, requests, sampling, clocks)
        calls.append({"prompts": [r.messages[-1].content for r in requests], "wall_s": perf_counter() - start})
        return out

    monkeypatch.setattr(HFProvider, "_generate", spy)
    return calls


@pytest.fixture(scope="module")
def unbatched(tiny_model_dir: Path) -> dict[str, tuple[str, int]]:
    """Each prompt generated alone with plain transformers (greedy): (text, generated token count)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    out = {}
    for cid, text in PROMPTS.items():
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = tok(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
        new = ids[0, enc["input_ids"].shape[1] :].tolist()
        out[cid] = (tok.decode(new, skip_special_tokens=True).strip(), len(new))
    return out


@slow
def test_batched_equals_unbatched_with_per_item_timing(tiny_model_dir, unbatched, batches, invoke, write_suite, tmp_path):
    run_dir, records = run_suite(invoke, write_suite, tmp_path, hf_suite(tiny_model_dir, PROMPTS))
    assert sorted(records) == sorted(PROMPTS)
    by_prompt = {PROMPTS[cid]: r for cid, r in records.items()}

    for cid, r in records.items():
        text, n_tokens = unbatched[cid]
        assert r["error"] is None, r["error"]
        assert r["output"] == text
        assert r["output_tokens"] == n_tokens  # the true generated length, not the padded one
        assert r["finish_reason"] == "stop"
        assert 0 < r["ttft_s"] <= r["latency_s"]
        assert r["input_tokens"] > 0
    # The answers really differ in length, so a batch holds rows that finish at different steps.
    assert len({r["output_tokens"] for r in records.values()}) == 4
    assert all(r["passed"] for r in records.values())

    assert sum(len(b["prompts"]) for b in batches) == 4
    multi = [b for b in batches if len(b["prompts"]) > 1]
    assert multi, f"expected at least one real batch, got {batches}"
    for batch in multi:
        rows = sorted((by_prompt[p] for p in batch["prompts"]), key=lambda r: r["output_tokens"])
        for r in rows:
            assert r["latency_s"] <= batch["wall_s"]
        # Per-item timing: an item ends at its own EOS, so longer answers take strictly longer.
        for shorter, longer in zip(rows, rows[1:]):
            assert shorter["latency_s"] < longer["latency_s"]
        # Items of one batch start together, so they share their first-token time.
        assert max(r["ttft_s"] for r in rows) - min(r["ttft_s"] for r in rows) < 1e-6

    manifest = json.loads((run_dir / "manifest.json").read_text())
    (model,) = manifest["models"]
    assert model["status"] == "ok" and model["details"]["device"] == "cpu" and model["details"]["batch_size"] == 4
    assert model["details"]["parameters"] > 0


@slow
def test_max_tokens_cuts_generation(tiny_model_dir, invoke, write_suite, tmp_path):
    _, records = run_suite(invoke, write_suite, tmp_path, hf_suite(tiny_model_dir, {"p1": "hello"}, max_tokens=3))
    r = records["p1"]
    assert r["output"] == "one two three"
    assert r["output_tokens"] == 3 and r["finish_reason"] == "length"


@slow
def test_stop_strings_end_generation_and_its_token_count(tiny_model_dir, invoke, write_suite, tmp_path):
    text = hf_suite(tiny_model_dir, {"p1": "hello", "p2": "please count from five"}).replace(
        "  max_tokens: 16", "  max_tokens: 16\n  stop: [three]"
    )
    _, records = run_suite(invoke, write_suite, tmp_path, text)
    # p1 counts "one two three ...": generation stops at "three", which is cut from the output.
    assert records["p1"]["output"] == "one two" and records["p1"]["finish_reason"] == "stop"
    assert records["p1"]["output_tokens"] == 3
    # p2 ("six seven eight" + EOS) never meets the stop string; its batch-mate's stop does not cut it.
    assert records["p2"]["output"] == "six seven eight" and records["p2"]["output_tokens"] == 4


@slow
@pytest.mark.parametrize("batch_size", [4, 1])
def test_one_failing_item_fails_alone(tiny_model_dir, unbatched, invoke, write_suite, tmp_path, monkeypatch, batch_size):
    original = HFProvider._generate

    def explode_on_boom(self, requests, sampling, clocks):
        if any("BOOM" in r.messages[-1].content for r in requests):
            raise RuntimeError("kaboom")
        return original(self, requests, sampling, clocks)

    monkeypatch.setattr(HFProvider, "_generate", explode_on_boom)
    prompts = {**PROMPTS, "boom": "BOOM count from five"}
    _, records = run_suite(invoke, write_suite, tmp_path, hf_suite(tiny_model_dir, prompts, batch_size=batch_size))
    assert records["boom"]["error"] == "RuntimeError: kaboom"
    assert records["boom"]["error_kind"] == "local" and records["boom"]["score"] is None
    for cid in PROMPTS:
        assert records[cid]["error"] is None
        assert (records[cid]["output"], records[cid]["output_tokens"]) == unbatched[cid]


# -- pkg:// --------------------------------------------------------------------------------------


def test_pkg_folder_resolves_without_importing(tmp_path):
    import email

    sys.modules.pop("email.mime", None)
    path, gguf = resolve_model_path("pkg://email/mime", None, tmp_path)
    assert Path(path) == Path(email.__file__).parent / "mime" and gguf is None
    assert "email.mime" not in sys.modules


def test_pkg_file_resolves_to_folder_and_file(tmp_path):
    import json as json_pkg

    path, gguf = resolve_model_path("pkg://json/decoder.py", None, tmp_path)
    assert Path(path) == Path(json_pkg.__file__).parent and gguf == "decoder.py"


def test_pkg_missing_package_is_clear(tmp_path):
    with pytest.raises(OpenbenchError, match="the Python package 'no_such_pkg_xyz' is not installed"):
        resolve_model_path("pkg://no_such_pkg_xyz/model.gguf", None, tmp_path)


def test_pkg_missing_path_inside_package(tmp_path):
    with pytest.raises(OpenbenchError, match="does not exist inside package 'json'"):
        resolve_model_path("pkg://json/nope.gguf", None, tmp_path)


def test_local_paths_and_hub_ids(tmp_path):
    (tmp_path / "weights").mkdir()
    assert resolve_model_path("weights", None, tmp_path) == (str(tmp_path / "weights"), None)
    assert resolve_model_path("org/some-model", None, tmp_path) == ("org/some-model", None)  # a hub id
    with pytest.raises(OpenbenchError, match="not found"):
        resolve_model_path("./missing", None, tmp_path)


def test_missing_model_folder_fails_the_model_and_the_others_still_run(invoke, write_suite, tmp_path):
    text = hf_suite(tmp_path / "no-such-folder", {"p1": "hello"}).replace(
        "tasks:", "  - id: fake\n    provider: fake\n    model: f\ntasks:"
    )
    out = tmp_path / "out"
    result = invoke("run", write_suite(text), "--out", out)
    assert result.exit_code == 1, result.output  # a failed model fails the run, once the others have run
    (run_dir,) = out.iterdir()
    models = {m["id"]: m for m in json.loads((run_dir / "manifest.json").read_text())["models"]}
    assert models["tiny"]["status"] == "failed" and "not found" in models["tiny"]["reason"]
    assert models["fake"]["status"] == "ok"


# -- batching across sampling settings, and timeouts ------------------------------------------------


@slow
def test_items_of_another_sampling_batch_together(tiny_model_dir, batches):
    """Queued items alternate between two sampling settings: each setting still fills whole batches."""
    import asyncio
    import threading

    from openbench.records import ChatRequest, Message, Sampling
    from openbench.suite import ModelSpec
    from openbench.timing import AttemptClock

    provider = HFProvider(ModelSpec(id="tiny", provider="hf", model=str(tiny_model_dir), batch_size=4), tiny_model_dir)
    long, short = Sampling(max_tokens=16), Sampling(max_tokens=12)
    requests = [ChatRequest((Message("user", f"count from {w}"),), long if i % 2 == 0 else short)
                for i, w in enumerate(["one", "two", "three", "four", "five", "six"] * 2)]

    async def go():
        await asyncio.to_thread(provider._load)
        pending = [asyncio.ensure_future(provider.complete(r, AttemptClock(), {})) for r in requests]
        await asyncio.sleep(0)  # every request is queued before the worker looks
        provider._worker = threading.Thread(target=provider._work, daemon=True)
        provider._worker.start()
        try:
            return await asyncio.gather(*pending)
        finally:
            await provider.close()

    done = asyncio.run(go())
    assert len(done) == 12 and all(c.usage.output_tokens for c in done)
    # 6 items of each setting, batches of 4: two batches per setting, never one item at a time.
    assert sorted(len(b["prompts"]) for b in batches) == [2, 2, 4, 4]


@pytest.fixture(scope="module")
def endless_model_dir(tiny_model_dir: Path, tmp_path_factory) -> Path:
    """The tiny counting model, changed to count on forever ("eight" is followed by "one", never EOS)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    vocab = tok.get_vocab()
    with torch.no_grad():
        model.lm_head.weight[:, vocab["eight"]] = 0.0
        model.lm_head.weight[vocab["one"], vocab["eight"]] = 10.0
    folder = tmp_path_factory.mktemp("endless")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@slow
def test_timeout_stops_a_runaway_generation_and_is_that_items_error(endless_model_dir, invoke, write_suite, tmp_path):
    text = hf_suite(endless_model_dir, {"p1": "hello", "p2": "count from seven"}, max_tokens=200).replace(
        "    batch_size: 4", "    batch_size: 4\n    timeout_s: 0.02"
    )
    out = tmp_path / "out"
    result = invoke("run", write_suite(text), "--out", out)
    (run_dir,) = out.iterdir()
    records = {r["case_id"]: r for r in map(json.loads, (run_dir / "records.jsonl").read_text().splitlines())}
    for r in records.values():
        assert r["error_kind"] == "timeout" and "timeout_s=0.02s" in r["error"], r
        assert r["attempts"] == 1  # a runaway generation is not retried
    assert "tiny" in result.output


@slow
def test_continuous_batching_answers_as_unbatched_with_per_item_timing(tiny_model_dir, unbatched, batches, invoke, write_suite, tmp_path):
    text = hf_suite(tiny_model_dir, PROMPTS, batch_size=2).replace("    batch_size: 2", "    batch_size: 2\n    batching: continuous")
    run_dir, records = run_suite(invoke, write_suite, tmp_path, text)
    for cid, (answer, n_tokens) in unbatched.items():
        r = records[cid]
        assert r["error"] is None, r["error"]
        assert (r["output"], r["output_tokens"]) == (answer, n_tokens)
        assert 0 < r["ttft_s"] <= r["latency_s"]
    assert batches == []  # no static batch ran
    entry = json.loads((run_dir / "manifest.json").read_text())["models"][0]
    assert entry["details"]["batching"] == "continuous"


@slow
def test_sweep_of_a_local_model_runs_each_level_as_its_batch_size(tiny_model_dir, batches, invoke, write_suite, tmp_path):
    from openbench.sweepresult import SweepResult

    suite = write_suite(hf_suite(tiny_model_dir, PROMPTS, batch_size=1).replace(
        "    batch_size: 1\n", "    batch_size: 1\n    hardware: {name: cpu-2core, usd_per_hour: 0.1}\n"))
    result = invoke("sweep", suite, "-m", "tiny", "-c", "1,4,16", "-n", "16", "--warmup", "0", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").iterdir()
    sweep = SweepResult.read(folder)
    assert sweep.load_axis == "batch size" and [lv.concurrency for lv in sweep.levels] == [1, 4, 16]
    # Each level's 16 items went out in batches of that level's size: 16 of 1, then 4 of 4, then 1 of 16.
    sizes = [len(b["prompts"]) for b in batches]
    assert sizes == [1] * 16 + [4] * 4 + [16], sizes
    for lv in sweep.levels:
        assert lv.errors == 0 and lv.requests == 16 and lv.quality == 1.0 and lv.output_tokens_mean > 0
    assert sweep.operating_point is not None and sweep.operating_point.usd_per_task is not None
    assert not sweep.warnings  # the model computes in openbench's process: its CPU is not openbench's overhead
    assert "batch size" in result.output and "batch 4" in result.output
    # Arrival rates need a server's queue: a local model's clock starts with its batch.
    refused = invoke("sweep", suite, "-m", "tiny", "--rate", "2", "--out", tmp_path / "out2")
    assert refused.exit_code == 2 and "swept by batch size" in refused.output and not (tmp_path / "out2").exists()

