"""The one-page HTML report: content, escaping, self-containment, and a real headless Chromium drawing it.

The browser tests need Debian's ``chromium`` package (``apt-get install -y chromium``); without it they skip.
Their screenshot lands in tests/artifacts/report.png (git-ignored) for a human to look at.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from openbench.manifest import RunManifest
from openbench.records import ItemResult
from openbench.report.html import MAX_POINTS_PER_MODEL, pareto_frontier, render_html
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
                          "as_of": "2026-11", "source": "builtin example list price"},
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


def render(run_dir: Path) -> str:
    store = RunStore.open(run_dir)
    manifest = store.read_manifest()
    return render_html(summarise(store.iter_records(), manifest), store.iter_records(), manifest)


def figures(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="figures">(.*?)</script>', page, re.S)
    assert found
    return json.loads(found.group(1))


def headline_row(page: str, model: str) -> str:
    start = page.index('<table class="headline">')
    table = page[start : page.index("</table>", start)]
    return next(row for row in table.split("<tr") if f"</span>{model}</td>" in row or f"</span>{model}<small" in row)


def test_report_has_every_section_in_plain_words(run_dir: Path) -> None:
    page = render(run_dir)
    for section in ("summary", "headline", "scatter", "latency", "tasks", "provenance"):
        assert f'<section id="{section}">' in page
    for chart in CHARTS:
        assert f'<div class="chart" id="{chart}"></div>' in page
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
    scatter = figures(page)["chart-scatter"]
    plotted = {t["text"][0] for t in scatter["data"] if t.get("mode") == "markers+text"}
    assert plotted == {"api-large", "api-mini", "local-small"}
    assert "Not shown because their cost is unknown: <strong>mystery-api</strong>" in page


def test_pareto_frontier_is_drawn_through_the_undominated_models(run_dir: Path) -> None:
    scatter = figures(render(run_dir))["chart-scatter"]
    frontier = next(t for t in scatter["data"] if t.get("name") == "Best trade-off (Pareto frontier)")
    # local-small ($0.00056, ~0.3) is dearer and worse than api-mini ($0.0002, ~0.7): off the frontier.
    assert frontier["x"] == pytest.approx([0.0002, 0.002])
    assert scatter["layout"]["xaxis"]["type"] == "log"
    symbols = {t["text"][0]: t["marker"]["symbol"] for t in scatter["data"] if t.get("mode") == "markers+text"}
    assert symbols == {"api-large": "diamond", "api-mini": "diamond", "local-small": "circle"}


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
    page = render_html(rows, records, manifest)  # a generator: read once
    box = figures(page)["chart-latency"]["data"][0]
    assert len(box["x"]) == MAX_POINTS_PER_MODEL
    assert min(box["x"]) == 1.0 and max(box["x"]) == float(many)  # the extremes survive thinning
    assert f"evenly spaced samples of the answers for api-large ({MAX_POINTS_PER_MODEL:,} of {many:,})" in page

    cached_excluded = figures(render(run_dir))["chart-latency"]["data"]
    assert all(max(t["x"]) < 999 for t in cached_excluded)


def test_report_with_nothing_run_still_explains_why() -> None:
    manifest = _manifest()
    manifest.models = [m for m in manifest.models if m.id == "skipped-model"]
    page = render_html(summarise([], manifest), iter(()), manifest)
    assert '<div class="chart"' not in page
    assert "Not run (skipped): ANTHROPIC_API_KEY is not set" in page
    assert "none needed (not run)" in page
    assert figures(page) == {}


def test_user_text_is_escaped(run_dir: Path) -> None:
    page = render(run_dir)
    assert "<help>" not in page and "support <bot>" not in page
    assert "faq &amp; &lt;help&gt;" in page
    assert "Model benchmark: support &lt;bot&gt;" in page
    # Plotly decodes entities in its labels, so the chart shows the name as written, never as markup.
    assert "faq &amp; &lt;help&gt;" in figures(page)["chart-tasks"]["data"][0]["x"]


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
    # The inlined library mentions URLs (its logo link, which the page turns off, and map tiles, which no chart
    # uses); everything else, markup, CSS and figures, must not name any at all.
    library = re.findall(r"<script>\s*/\*\*\s*\* plotly\.js v.*?</script>", page, re.S)
    assert len(library) == 1
    ours = page.replace(library[0], "")
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", ours, re.I)


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("needs a headless Chromium: apt-get install -y chromium (Debian)")
    return path


def _chromium_run(chromium: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
        "--virtual-time-budget=5000", *extra, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


class _ChartDom(HTMLParser):
    """Per chart div: whether Plotly marked it drawn and how many of its SVGs it drew; the error box's text."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, Any]] = {}
        self.errors = ""
        self.errors_hidden = True
        self._open: list[tuple[str, str | None]] = []  # (tag, chart or error box that this tag opened)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        owner = None
        if tag == "div" and attr.get("id") in CHARTS:
            owner = attr["id"]
            self.charts[owner] = {"rendered": attr.get("data-rendered") == "true", "svgs": 0}
        elif attr.get("id") == "render-errors":
            owner = "errors"
            self.errors_hidden = "hidden" in attr
        inside = [o for _, o in self._open if o]
        if tag == "svg" and "main-svg" in (attr.get("class") or "").split() and inside and inside[-1] in self.charts:
            self.charts[inside[-1]]["svgs"] += 1
        if tag not in ("br", "img", "input", "meta", "link", "hr", "path", "rect", "line", "circle", "use", "stop"):
            self._open.append((tag, owner))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        if any(o == "errors" for _, o in self._open):
            self.errors += data


def test_browser_draws_every_chart_without_errors(chromium: str, run_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(run_dir), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    # One browser start does both: the DOM once the page settled, and a screenshot of it.
    done = _chromium_run(chromium, page, tmp_path / "profile", "--dump-dom", f"--screenshot={shot}", "--window-size=1280,2400")
    dom = _ChartDom()
    dom.feed(done.stdout)
    assert dom.errors_hidden and not dom.errors.strip(), dom.errors
    assert set(dom.charts) == set(CHARTS)
    for chart, seen in dom.charts.items():
        assert seen["rendered"] and seen["svgs"] >= 1, (chart, seen)
    assert shot.stat().st_size > 50_000  # a blank 1280x2400 PNG is a few kB
    # The escaped task name is drawn as text, never parsed as markup.
    assert "faq &amp; &lt;help&gt;" in done.stdout and "<help>" not in done.stdout


def test_browser_error_box_catches_a_broken_chart(chromium: str, run_dir: Path, tmp_path: Path) -> None:
    """The check above is only worth something if a failure would show: break the figures on purpose."""
    figures_tag = r'(<script type="application/json" id="figures">).*?(</script>)'
    broken = re.sub(figures_tag, r"\1{not json\2", render(run_dir), flags=re.S)
    page = tmp_path / "broken.html"
    page.write_text(broken, encoding="utf-8")
    dom = _ChartDom()
    dom.feed(_chromium_run(chromium, page, tmp_path / "profile", "--dump-dom").stdout)
    assert not dom.errors_hidden
    assert "could not be drawn" in dom.errors and "JSON" in dom.errors
    assert not any(seen["svgs"] for seen in dom.charts.values())
