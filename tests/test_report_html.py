"""The one-page HTML report: content, escaping, self-containment, and a real headless Chromium drawing it.

The browser tests need Debian's ``chromium`` package (``apt-get install -y chromium``); without it they skip.
Their screenshot lands in tests/artifacts/report.png (git-ignored) for a human to look at.
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
import sys
from array import array
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from openbench.compare import Side, compare
from openbench.gate import GateRules, decide
from openbench.manifest import ProcessInfo, RunManifest
from openbench.records import ItemResult
from openbench.report.html import MAX_POINTS_PER_MODEL, build_view, pareto_frontier, render_html, render_view
from openbench.report.html.answers import MAX_PER_TASK, MAX_SHOWN, AnswerCollector
from openbench.report.html.charts import Box
from openbench.store import RunStore
from openbench.summary import summarise

ARTIFACTS = Path(__file__).parent / "artifacts"
CHARTS = ("chart-scatter", "chart-latency", "chart-tasks")
TASKS = ["triage", "faq & <help>"]
PRICE_AS_OF = "2026-11-20"

# model id -> (provider, chance of passing, $ per item or None, latency seconds, errors per task)
RAN = {
    "api-large": ("openai", 0.9, 0.002, 1.5, 0),
    "api-mini": ("openai", 0.7, 0.0002, 0.6, 1),
    "local-small": ("hf", 0.3, None, 2.0, 0),
    "mystery-api": ("openai-compatible", 0.8, None, 0.9, 0),
}


def _price(inp: float, out: float, ref: str) -> dict[str, Any]:
    return {
        "input_per_mtok": inp, "output_per_mtok": out, "cache_read_per_mtok": inp / 2, "cache_write_per_mtok": None,
        "reasoning_per_mtok": None, "batch_discount": 0.5, "source": "genai-prices",
        "catalogue_version": "genai-prices 0.2.3", "as_of": PRICE_AS_OF, "model_ref": ref, "tiers": [],
    }  # fmt: skip


def _manifest() -> RunManifest:
    models = [
        {"id": model, "provider": provider, "model": f"{model}-v1", "status": "ok", "reason": None, "items": 40,
         "errors": 0, "price": None, "hardware_profile": None, "utilisation": None}
        for model, (provider, *_rest) in RAN.items()
    ]  # fmt: skip
    models[0]["price"] = _price(2, 8, "gpt-4.1")
    models[1]["price"] = _price(0.15, 0.6, "gpt-4o-mini")
    models[2].update(
        busy_s=400.0,  # 10 s of the machine per task -> $0.10/h * 10 s / 3600 / 0.5 busy = $0.00056 per task
        hardware_profile={"name": "cpu-2core", "accelerator": "cpu (2 vCPU)", "count": 1, "usd_per_hour": 0.1,
                          "as_of": "2026-11", "source": "builtin example list price (see HARDWARE_NOTE)"},
        details={"device": "cpu", "dtype": "bfloat16", "parameters": 134_515_008},
    )  # fmt: skip
    models.append(
        {"id": "skipped-model", "provider": "anthropic", "model": "claude-haiku-4-5", "status": "skipped",
         "reason": "ANTHROPIC_API_KEY is not set"}
    )  # fmt: skip
    return RunManifest.model_validate({
        "run_id": "20261125-120000-support",
        "status": "completed",
        "openbench_version": "0.1.0",
        "suite": {"name": "support <bot>", "path": "/suites/support.yaml", "sha256": "ab" * 32},
        "tasks": TASKS,
        "seed": 0,
        "started_at": "2026-11-25T12:00:00+00:00",
        "ended_at": "2026-11-25T12:05:00+00:00",
        "resumed_at": [],
        "options": {"limit": 20, "cache": True},
        "environment": {
            "python": "3.11.7",
            "packages": {"openbench-harness": "0.1.0", "transformers": "5.24.0", "genai-prices": "0.2.3"},
            "git_sha": "0123abc",
            "hardware": {"machine": "x86_64", "cpu": "Test CPU", "cpu_count": 2, "memory_gib": 23.5},
            "hf_offline": True,
        },
        "models": models,
        "spent_usd": 0.05,
    })


def _records() -> list[ItemResult]:
    rng = random.Random(7)
    out = []
    for task in TASKS:
        for model, (_, p_pass, cost, latency, errors) in RAN.items():
            for i in range(20):
                case = f"c{i:02d}"
                if i < errors:
                    out.append(ItemResult(task, case, model, error="HTTP 500", error_kind="server", attempts=3))
                    continue
                passed = rng.random() < p_pass
                out.append(
                    ItemResult(
                        task, case, model, output="answer", score=float(passed), passed=passed,
                        latency_s=latency * rng.uniform(0.6, 1.8), ttft_s=latency / 4, output_tps=40.0,
                        input_tokens=100, output_tokens=20, cost_usd=cost, attempts=1,
                    )
                )  # fmt: skip
    # A cached replay: counts for quality, never for latency (even if a latency slipped in).
    out.append(
        ItemResult("triage", "c99", "api-large", output="answer", score=1.0, passed=True, latency_s=999.0, cached=True, cost_usd=0.002)
    )
    return out


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    store = RunStore.create(tmp_path, "run")
    store.write_manifest(_manifest())
    for record in _records():
        store.append(record)
    store.close()
    return store.path


def render(run_dir: Path, gate: dict[str, Any] | None = None) -> str:
    store = RunStore.open(run_dir)
    manifest = store.read_manifest()
    return render_html(summarise(store.iter_records(), manifest), store.iter_records(), manifest, gate)


def gate_decision(run_dir: Path) -> dict[str, Any]:
    """The real gate's decision (as gate.json holds it): api-mini as a candidate to replace api-large."""
    store = RunStore.open(run_dir)
    comparison = compare(Side(store, "api-large"), Side(store, "api-mini"), 0.95, allow_partial=True)
    return decide(comparison, GateRules(margin=0.05, max_p95_latency_s=2.0)).to_dict()


class _Elements(HTMLParser):
    """Every element inside one element (found by id): its tag, attributes and own text."""

    VOID = {"br", "img", "input", "meta", "link", "hr", "wbr"}

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.element_id = element_id
        self.found: list[tuple[str, dict[str, str | None], str]] = []
        self._open: list[int] = []  # indices into found of the elements still open

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if self._open or attr.get("id") == self.element_id:
            self.found.append((tag, attr, ""))
            if tag not in self.VOID:
                self._open.append(len(self.found) - 1)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            tag, attr, text = self.found[self._open[-1]]
            self.found[self._open[-1]] = (tag, attr, text + data)


def elements(page: str, element_id: str) -> list[tuple[str, dict[str, str | None], str]]:
    parser = _Elements(element_id)
    parser.feed(page)
    return parser.found


def markers(page: str) -> dict[str, tuple[str, str, float]]:
    """The scatter's markers: model -> (SVG tag, class, cost)."""
    return {
        a["data-model"]: (tag, a["class"], float(a["data-cost"]))
        for tag, a, _ in elements(page, "chart-scatter")
        if "marker" in (a.get("class") or "").split()
    }


def headline_row(page: str, model: str) -> str:
    start = page.index('<table class="headline">')
    table = page[start : page.index("</table>", start)]
    return next(row for row in table.split("<tr") if f"</span>{model}</td>" in row or f"</span>{model}<small" in row)


def test_report_has_every_section_in_plain_words(run_dir: Path) -> None:
    page = render(run_dir)
    for section in ("summary", "headline", "scatter", "latency", "tasks", "provenance"):
        assert f'<section id="{section}">' in page
    for chart in CHARTS:
        assert f'<div class="chart" id="{chart}"><svg' in page
    summary = page[page.index('<section id="summary">') : page.index("</section>")]
    assert "Highest quality: <strong>api-large</strong>" in summary
    assert "Lowest cost: <strong>api-mini</strong>" in summary
    assert "Fastest: <strong>api-mini</strong>" in summary
    assert "the cost of <strong>mystery-api</strong> is unknown" in summary
    assert "<strong>skipped-model</strong> (ANTHROPIC_API_KEY is not set)" in summary
    assert "<strong>api-mini</strong> 2 of 40" in summary  # failed requests, counted apart
    assert "Not run (skipped): ANTHROPIC_API_KEY is not set" in headline_row(page, "skipped-model")
    # Every chart has a caption saying how to read it.
    assert page.count('<p class="caption">') >= 5


def test_unknown_cost_reads_unknown_and_is_not_plotted(run_dir: Path) -> None:
    page = render(run_dir)
    mystery = headline_row(page, "mystery-api")
    assert ">unknown<" in mystery
    assert "$0" not in mystery
    assert "$0.0002" in headline_row(page, "api-mini")
    assert "self-hosted" in headline_row(page, "local-small")
    assert set(markers(page)) == {"api-large", "api-mini", "local-small"}
    assert "Not shown because their cost is unknown: <strong>mystery-api</strong>" in page


def test_pareto_frontier_is_drawn_through_the_undominated_models(run_dir: Path) -> None:
    page = render(run_dir)
    drawn = markers(page)
    # local-small ($0.00056, ~0.3) is dearer and worse than api-mini ($0.0002, ~0.7): off the frontier.
    on = sorted(cost for _, kind, cost in drawn.values() if "on-frontier" in kind)
    assert on == pytest.approx([0.0002, 0.002])
    line = [e for e in elements(page, "chart-scatter") if e[1].get("class") == "frontier"]
    assert len(line) == 1 and len(line[0][1]["points"].split()) == 2
    assert "Cost per task (US$, log scale)" in page
    # Frontier models are diamonds (a path), the others circles.
    assert {m: tag for m, (tag, _, _) in drawn.items()} == {"api-large": "path", "api-mini": "path", "local-small": "circle"}


def test_log_axis_ticks_read_as_plain_dollars_in_order(run_dir: Path) -> None:
    ticks = [text for _, a, text in elements(render(run_dir), "chart-scatter") if a.get("class") == "tick"]
    dollars = [t for t in ticks if t.startswith("$")]
    assert len(dollars) >= 3 and len(dollars) == len(ticks) - 6  # the six others are the quality axis
    values = [float(t[1:].replace(",", "")) for t in dollars]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_pareto_frontier_function() -> None:
    points = {"a": (1.0, 0.5), "b": (2.0, 0.9), "c": (3.0, 0.8), "d": (1.0, 0.4), "e": (2.0, 0.9)}
    # c is beaten by b (cheaper, better); d by a (same cost, better); b and e tie, so neither beats the other.
    assert pareto_frontier(points) == ["a", "b", "e"]
    assert pareto_frontier({}) == []


def test_latency_chart_streams_records_and_thins_large_runs(run_dir: Path) -> None:
    manifest = _manifest()
    many = MAX_POINTS_PER_MODEL * 2 + 7
    records = (
        ItemResult("triage", f"c{i}", "api-large", score=1.0, passed=True, latency_s=float(i + 1), cost_usd=0.002)
        for i in range(many)
    )
    one = ItemResult("triage", "c0", "api-large", score=1.0, passed=True, latency_s=1.0, cost_usd=0.002)
    rows = summarise([one], manifest)
    view = build_view(rows, records, manifest)  # a generator: read once
    box = Box.of(view.latencies["api-large"])
    assert box.n == many and box.median == pytest.approx((many + 1) / 2)  # every value counts for the box
    assert box.low == 1.0 and box.high == float(many)  # evenly spread: the whiskers reach the extremes
    assert box.dots == [] and "evenly spaced samples" not in render_view(view)
    # Long-tailed: the unusual answers are drawn as dots, at most MAX_POINTS_PER_MODEL, extremes kept.
    tail = [float(i % 10) for i in range(MAX_POINTS_PER_MODEL * 8)] + [1e5 + i for i in range(MAX_POINTS_PER_MODEL + 50)]
    box = Box.of(array("d", tail))
    assert len(box.dots) == MAX_POINTS_PER_MODEL and box.thinned and max(box.dots) == max(tail)

    dots = [e for e in elements(render(run_dir), "chart-latency") if e[1].get("class") == "dot"]
    assert len(dots) == sum(1 for r in _records() if r.error is None and not r.cached)  # cached replay left out


def test_report_with_nothing_run_still_explains_why() -> None:
    manifest = _manifest()
    manifest.models = [m for m in manifest.models if m.id == "skipped-model"]
    page = render_html(summarise([], manifest), iter(()), manifest)
    assert '<div class="chart"' not in page and "<svg" not in page
    assert "Not run (skipped): ANTHROPIC_API_KEY is not set" in page
    assert "none needed (not run)" in page


def test_user_text_is_escaped(run_dir: Path) -> None:
    page = render(run_dir)
    assert "<help>" not in page and "support <bot>" not in page
    assert "faq &amp; &lt;help&gt;" in page
    assert "Model benchmark: support &lt;bot&gt;" in page
    labels = [text for _, a, text in elements(page, "chart-tasks") if "task" in (a.get("class") or "").split()]
    assert labels == ["triage", "faq & <help>"]  # the parser decodes the escaped text: drawn as written


def test_provenance_names_suite_software_hardware_and_dated_prices(run_dir: Path) -> None:
    page = render(run_dir)
    provenance = page[page.index('<section id="provenance">') :]
    for text in (
        "ab" * 32, "/suites/support.yaml", "20261125-120000-support", "2026-11-25 12:00 UTC", "0123abc",
        "transformers", "5.24.0", "CPU cores", "Test CPU", "$2.00 / $8.00 per 1M tokens", PRICE_AS_OF,
        "genai-prices 0.2.3",
        "at $0.10/hour, 50% busy", "2026-11", "ANTHROPIC_API_KEY is not set", "unknown: no price on record",
    ):  # fmt: skip
        assert text in provenance, text


def test_report_is_self_contained_and_leaks_no_secret(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-do-not-leak")
    page = render(run_dir)
    assert "sk-test-do-not-leak" not in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link\b", page, re.I)
    assert not re.search(r"<(?:img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.I)  # names no address at all
    assert len(page.encode()) < 2_000_000


def test_gate_verdict_leads_the_report_with_its_rules_and_flips(run_dir: Path) -> None:
    gate = gate_decision(run_dir)
    page = render(run_dir, gate)
    assert page.index('<section id="gate"') < page.index('<section id="summary">')
    section = page[page.index('<section id="gate"') : page.index('<section id="summary">')]
    assert f'<p class="verdict">{gate["verdict"]}</p>' in section
    assert ('class="pass"' if gate["passed"] else 'class="fail"') in section
    for result in gate["results"]:
        assert f"<td>{result['rule']}</td>" in section
    assert "Slowest 5% of answers at most</dt><dd>2 s" in section and "5 points" in section
    # Every item that api-large passed and api-mini failed (or the reverse), counted from the records.
    by_key = {}
    for r in _records():
        if not r.cached and r.model in ("api-large", "api-mini"):  # a failed request counts as a failure
            by_key.setdefault((r.task, r.case_id), {})[r.model] = r.error is None and r.passed
    flips = [k for k, v in by_key.items() if len(v) == 2 and v["api-large"] != v["api-mini"]]
    assert flips and f"{len(flips)} items changed outcome" in section
    links = re.findall(r'<li><a href="#(answer-\d+)">', section)
    assert len(links) == min(10, len(flips)) and all(f'<article class="answer" id="{a}"' in page for a in links)
    assert '<section id="gate"' not in render(run_dir)  # no gate, no section


def test_answers_show_each_model_side_by_side_escaped_and_capped(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest.tasks = ["triage"]
    manifest.models = [m for m in manifest.models if m.id in ("api-large", "api-mini")]
    records = []
    for i in range(MAX_PER_TASK + 15):
        scores = {"contains": {"value": 0.0, "passed": False, "explanation": f"expected 'billing' in the answer {i}"}}
        records.append(ItemResult("triage", f"c{i:02d}", "api-large", output="billing", score=1.0, passed=True, latency_s=1.0))
        records.append(
            ItemResult("triage", f"c{i:02d}", "api-mini", output=f"<script>alert({i})</script> & co", score=0.0,
                       passed=False, scores=scores, latency_s=1.0)
        )  # fmt: skip
    records.append(ItemResult("triage", "same", "api-large", output="ok", score=1.0, passed=True, latency_s=1.0))
    records.append(ItemResult("triage", "same", "api-mini", output="ok", score=1.0, passed=True, latency_s=1.0))
    page = render_html(summarise(records, manifest), records, manifest)
    cards = re.findall(r'<article class="answer" id="[^"]+" data-task="triage" data-kind="disagree">', page)
    assert len(cards) == MAX_PER_TASK  # capped; the rest are left to items.csv
    assert f"{MAX_PER_TASK} of {MAX_PER_TASK + 15} such items are shown" in page and "items.csv" in page
    assert "<script>alert(" not in page and "&lt;script&gt;alert(0)&lt;/script&gt; &amp; co" in page
    assert "expected &#39;billing&#39; in the answer 0" in page
    card = elements(page, "answer-1")
    assert [a["data-model"] for _, a, _ in card if a.get("class") == "side"] == ["api-large", "api-mini"]
    assert "score 1.00" in page and "score 0.00" in page
    assert 'data-task="triage" data-kind' in page and "same" not in re.findall(r"<code>([^<]+)</code>", page)


def test_answers_share_one_cap_across_many_tasks() -> None:
    tasks = [f"t{i}" for i in range(10)]
    collector = AnswerCollector(tasks, {t: ["a", "b"] for t in tasks}, None)
    for task in tasks:
        for i in range(30):
            collector.add(ItemResult(task, f"c{i}", "a", output="x", score=1.0, passed=True))
            collector.add(ItemResult(task, f"c{i}", "b", output="y", score=0.0, passed=False))
    view = collector.finish()
    assert view.total == 300 and view.per_task == MAX_SHOWN // 10
    assert len(view.shown) == MAX_SHOWN and {a.task for a in view.shown} == set(tasks)


def test_model_notes_are_shown_escaped(run_dir: Path) -> None:
    store = RunStore.open(run_dir)
    manifest = store.read_manifest()
    manifest.models[0].details["adjustments"] = ["api-large: temperature <0.7> dropped (the model accepts only 1)"]
    page = render_html(summarise(store.iter_records(), manifest), store.iter_records(), manifest)
    assert '<section id="notes">' in page
    assert "<li>api-large: temperature &lt;0.7&gt; dropped (the model accepts only 1)</li>" in page
    assert '<section id="notes">' not in render(run_dir)


def test_interrupted_run_says_so_and_no_internal_labels(run_dir: Path) -> None:
    store = RunStore.open(run_dir)
    manifest = store.read_manifest()
    # Killed without a chance to write its end: the manifest still says "running", but its process is gone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    manifest.status, manifest.process = "running", ProcessInfo(host=socket.gethostname(), pid=dead.pid, started=1.0)
    page = render_html(summarise(store.iter_records(), manifest), store.iter_records(), manifest)
    assert "Interrupted: the figures cover the items finished before it stopped" in page
    assert "Running" not in page and "status: running" not in page
    assert "Option:" not in page and "HARDWARE_NOTE" not in page
    assert "<th>Response cache</th><td>on</td>" in page and "<th>Items per task at most</th><td>20</td>" in page
    assert 'id="run-status"' not in render(run_dir)  # a completed run needs no banner


def _chromium_run(chromium: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
        "--virtual-time-budget=5000", *extra, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _console(stderr: str) -> list[str]:
    """The page's console messages (errors, uncaught exceptions, logs) from Chromium's --enable-logging output."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _browse(chromium: str, html: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    return _chromium_run(chromium, page, tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--dump-dom", *extra)


def test_browser_shows_gate_answers_and_charts_without_console_errors(chromium: str, run_dir: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    # One browser start does all: console messages, the DOM once scripts ran, and a screenshot.
    gate = gate_decision(run_dir)
    done = _browse(chromium, render(run_dir, gate), tmp_path, f"--screenshot={shot}", "--window-size=1280,5200")
    assert _console(done.stderr) == []
    dom = done.stdout
    verdict = [text.strip() for tag, a, text in elements(dom, "gate") if a.get("class") == "verdict"]
    assert verdict == [gate["verdict"]]
    assert dom.index('id="gate"') < dom.index('id="summary"')  # the verdict comes first
    cards = [a for tag, a, _ in elements(dom, "answers") if tag == "article"]
    first = elements(dom, cards[0]["id"])
    sides = [a["data-model"] for tag, a, _ in first if "side" in (a.get("class") or "").split()]
    assert len(sides) == len(RAN) and cards[0]["data-kind"] == "flip"
    assert "<pre>answer</pre>" in dom
    counter = [text for _, a, text in elements(dom, "answers") if "answers-count" in (a.get("class") or "")]
    assert counter == [f"{len(cards)} of {len(cards)} shown"]  # the script ran over every card
    for chart in CHARTS:
        assert sum(tag in ("rect", "circle", "path") for tag, _, _ in elements(dom, chart)) >= 3, chart
    assert shot.stat().st_size > 100_000  # a blank 1280x5200 PNG is a few kB
    assert "faq &amp; &lt;help&gt;" in dom and "<help>" not in dom


def test_browser_console_check_catches_a_script_error(chromium: str, run_dir: Path, tmp_path: Path) -> None:
    """The check above is only worth something if a failure would show: break the page on purpose."""
    broken = render(run_dir).replace("</body>", "<script>notAFunction();</script></body>")
    done = _browse(chromium, broken, tmp_path)
    assert any("notAFunction" in line for line in _console(done.stderr))
    box = [text for _, a, text in elements(done.stdout, "render-errors")]
    assert box and "notAFunction" in box[0]
