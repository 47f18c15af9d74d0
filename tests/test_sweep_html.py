"""A sweep in HTML: sweep.html written by ``openbench sweep``, and ``openbench report RUN --sweep DIR``.

The sweeps run for real against the loopback server with a fixed number of slots (as tests/test_sweep.py
explains): with 2 slots and a target of 1.6 request times, concurrency 1 and 2 meet it and 4 (which queues
every other request) does not, so the chart has levels on both sides of its target line.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api_helpers import write_suite
from fakeserver import FakeServer, FakeServerProcess
from test_report_html import _browse, _console, elements

from openbench.pricing.hardware import HOURS_PER_MONTH, Hardware, break_even_tasks_per_month
from openbench.report.html import render_sweep_page
from openbench.report.table import fmt_usd
from openbench.sweepresult import SweepResult, operating_point, verdict

TTFT, PER_TOKEN, TOKENS, SLOTS = 0.1, 0.02, 6, 2
T = TTFT + (TOKENS - 1) * PER_TOKEN  # one request's service time: 0.2 s
SLO = 1.6 * T
USD_PER_HOUR = 3.6


def _invoke(env: dict[str, str], *args: Any) -> Any:
    from openbench.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "120", **env})


def _suite(srv: FakeServer | FakeServerProcess, path: Path, api: bool = False) -> Path:
    models = [{"id": "engine", "provider": "openai-compatible", "model": "m", "base_url": f"{srv.url}/v1", "cache": False,
               "max_retries": 0, "hardware": {"name": "h100", "count": 1, "usd_per_hour": USD_PER_HOUR}}]
    if api:
        models.append({"id": "gpt-4o-mini", "provider": "openai", "model": "gpt-4o-mini", "cache": False})
    cases = [{"id": f"c{i}", "q": f"question {i}", "answer": " ".join(f"tok{k}" for k in range(TOKENS))} for i in range(4)]
    return write_suite(path, models, cases, prompt="{{ q }}")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real sweep (levels 1, 2, 4 on 2 slots) and one real run of the same suite with an API model beside it."""
    tmp = tmp_path_factory.mktemp("sweep")
    # The server in a process of its own, so that its timing does not share the client's interpreter.
    args = ("--ttft", str(TTFT), "--per-token", str(PER_TOKEN), "--tokens", str(TOKENS), "--slots", str(SLOTS))
    with FakeServerProcess(*args) as srv:
        env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{srv.url}/v1", "OPENBENCH_CACHE_DIR": str(tmp / "cache")}
        suite = _suite(srv, tmp / "suite.yaml", api=True)
        done = _invoke(env, "sweep", suite, "--model", "engine", "--concurrency", "1,2,4", "--requests-per-level", "8",
                       "--slo-p95", SLO, "--out", tmp / "sweeps")
        assert done.exit_code == 0, done.output
        ran = _invoke(env, "run", suite, "--out", tmp / "runs")
        assert ran.exit_code == 0, ran.output
    (sweep_dir,) = (tmp / "sweeps").iterdir()
    (run_dir,) = (tmp / "runs").iterdir()
    return {"sweep": sweep_dir, "run": run_dir, "tmp": tmp}


def _svg(page: str) -> list[tuple[str, dict[str, Any], str]]:
    return elements(page, "chart-sweep")


def _markers(page: str, series: str = "E2E p95") -> dict[str, dict[str, Any]]:
    """The chart's level markers of one series: level -> attributes (the × over a failed level included)."""
    out: dict[str, dict[str, Any]] = {}
    for tag, a, _ in _svg(page):
        if a.get("data-series") == series:
            out.setdefault(a["data-level"], {"tags": []})["tags"].append(tag)
            out[a["data-level"]].update(a)
    return out


def _y_of(page: str, seconds: float) -> float:
    """Where the chart's own y axis puts ``seconds``: the line through its first and last tick."""
    ticks = [(float(text[:-2]), float(a["y"]) - 4) for _, a, text in _svg(page) if a.get("class") == "tick" and text.endswith(" s")]
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]
    return y0 + (seconds - v0) * (y1 - y0) / (v1 - v0)


def _centre_y(a: dict[str, Any]) -> float:
    if "cy" in a:
        return float(a["cy"])
    return float(re.match(r"M[\d.]+,([\d.]+)", a["d"]).group(1)) + 10  # the diamond's path starts at its top corner


def test_sweep_writes_a_page_with_each_level_the_target_and_the_operating_point(swept: dict[str, Path]) -> None:
    result = SweepResult.read(swept["sweep"])
    page = (swept["sweep"] / "sweep.html").read_text(encoding="utf-8")
    point = result.operating_point
    assert [lv.concurrency for lv in result.levels] == [1, 2, 4]
    assert point is not None and point.concurrency == SLOTS  # queueing theory: more clients than slots only wait
    drawn = _markers(page)
    assert list(drawn) == ["c=1", "c=2", "c=4"]
    targets = [a for _, a, _ in _svg(page) if a.get("class") == "target"]
    assert len(targets) == 1 and float(targets[0]["data-target"]) == SLO
    target_y = float(targets[0]["y1"])
    assert target_y == pytest.approx(_y_of(page, SLO), abs=0.5)
    for lv in result.levels:
        a = drawn[result.level_name(lv)]
        assert float(a["data-x"]) == pytest.approx(lv.output_tokens_per_s, abs=1e-3)
        assert _centre_y(a) == pytest.approx(_y_of(page, lv.e2e_p95_s), abs=0.5)
        # Met: below the line (a larger SVG y), filled; missed: above it, hollow, and its label says so in words.
        assert (_centre_y(a) > target_y) == lv.meets_target
        assert a["data-state"] == ("operating" if lv.concurrency == point.concurrency else "met" if lv.meets_target else "missed")
    assert drawn["c=2"]["class"] == "marker operating" and drawn["c=2"]["tags"] == ["path"]
    assert drawn["c=4"]["class"] == "marker missed"
    labels = [text for _, a, text in _svg(page) if a.get("class") == "label halo"]
    assert "c=1" in labels and "c=4: over target" in labels
    notes = " ".join(text for _, a, text in _svg(page) if a.get("class") in ("label", "note"))
    assert f"Operating point: concurrency {SLOTS}" in notes and f"{point.requests_per_s:.2f} req/s" in notes
    assert fmt_usd(point.usd_per_mtok_output) in notes and fmt_usd(point.usd_per_task) in notes
    assert "<title>Throughput against response time</title><desc>" in page
    table = _table(page, "sweep-levels")
    assert table.count('<tr class="operating">') == 1 and table.count('<tr class="missed">') == 1
    assert ">operating point<" in table and "<th class=num>concurrency</th>" in table
    # The suite's API model, as the sweep priced it on the operating point's token mix.
    (api,) = result.against
    (row,) = [r for r in _table(page, "break-even").split("<tr")[2:]]
    assert api.model in row and fmt_usd(api.usd_per_task) in row and verdict(api, point) in row
    assert "list prices on the operating point" in page
    assert "<script src" not in page and "http://" not in page and "https://" not in page  # self-contained


def _table(page: str, css: str) -> str:
    table = page[page.index(f'class="plain {css}"'):]
    return table[: table.index("</table>")]


def _break_even(api_per_task: float, requests_per_s: float) -> float | None:
    box = Hardware(name="box", accelerator="", count=1, usd_per_hour=USD_PER_HOUR)
    return break_even_tasks_per_month(api_per_task, box, 1 / requests_per_s)


def test_report_with_a_sweep_sets_the_box_against_each_api_model(swept: dict[str, Path]) -> None:
    result = SweepResult.read(swept["sweep"])
    point = result.operating_point
    records = [json.loads(line) for line in (swept["run"] / "records.jsonl").read_text().splitlines()]
    api = [r["cost_usd"] for r in records if r["model"] == "gpt-4o-mini"]
    api_per_task = sum(api) / len(api)
    even = _break_even(api_per_task, point.requests_per_s)
    out = swept["tmp"] / "report.html"
    done = _invoke({}, "report", swept["run"], "--sweep", swept["sweep"], "-o", out)
    assert done.exit_code == 0, done.output
    page = out.read_text(encoding="utf-8")
    section = page[page.index('<section id="sweep">'):]
    section = section[: section.index("</section>")]
    assert "<h2>Self-hosting at the latency target</h2>" in section and 'id="chart-sweep"' in section
    rows = _table(section, "break-even")
    (row,) = [r for r in rows.split("<tr")[2:] if "gpt-4o-mini" in r]  # the API model, not the self-hosted one
    assert "engine" not in rows and "as measured in this run" in section
    assert fmt_usd(api_per_task) in row and fmt_usd(point.usd_per_task) in section
    assert ("-" if even is None else f"{even:,.0f}") in row
    assert ("never pays for itself" if even is None else f"cheaper above {even:,.0f}") in row
    md = _invoke({}, "report", swept["run"], "--sweep", swept["sweep"], "--format", "md", "-o", "-")
    assert md.exit_code == 0, md.output
    assert "### Self-hosting at the latency target: engine" in md.output
    assert f"| gpt-4o-mini | {fmt_usd(api_per_task)} | 1.00 | {'-' if even is None else f'{even:,.0f}'} |" in md.output
    assert "| <- operating point |" in md.output
    assert _invoke({}, "report", swept["run"], "--sweep", swept["sweep"], "--format", "json").exit_code == 2
    wrong = _invoke({}, "report", swept["run"], "--sweep", swept["run"])
    assert wrong.exit_code == 2 and "no sweep.json" in wrong.output


def test_break_even_rows_are_the_same_for_the_terminal_and_the_page(swept: dict[str, Path]) -> None:
    from openbench.report.html.sweep import sweep_view
    from openbench.store import RunStore
    from openbench.summary import ALL_TASKS, summarise

    result = SweepResult.read(swept["sweep"])
    store = RunStore.open(swept["run"])
    rows = summarise(store.iter_records(), store.read_manifest())
    # The API priced a million times dearer: now one box pays for itself from the volume where it costs the same.
    dear = [dataclasses.replace(r, cost_per_task_usd=r.cost_per_task_usd * 1e6) if r.cost_basis == "api" else r for r in rows]
    (api,) = [r for r in dear if r.task == ALL_TASKS and r.cost_basis == "api"]
    (row,) = sweep_view(result, dear).against
    assert row.model == "gpt-4o-mini" and row.quality == api.quality_mean
    assert row.break_even_tasks_per_month == pytest.approx(USD_PER_HOUR * HOURS_PER_MONTH / api.cost_per_task_usd)
    assert "cheaper above" in verdict(row, result.operating_point)
    cost = _invoke({}, "cost", swept["run"], "--sweep", swept["sweep"])
    assert cost.exit_code == 0, cost.output
    (real,) = sweep_view(result, rows).against
    assert f"vs gpt-4o-mini at {fmt_usd(real.usd_per_task)}/task: {verdict(real, result.operating_point)}" in cost.output
    assert not sweep_view(result, rows, result.suite).warnings
    (other,) = sweep_view(result, rows, "/elsewhere/other.yaml").warnings
    assert "/elsewhere/other.yaml" in other and "like with like" in other


def test_a_sweep_where_every_request_fails_still_draws(tmp_path: Path) -> None:
    with FakeServer(fail_all="500") as srv:
        suite = _suite(srv, tmp_path / "suite.yaml")
        done = _invoke({"OPENBENCH_CACHE_DIR": str(tmp_path / "cache")}, "sweep", suite, "--model", "engine",
                       "--requests-per-level", "2", "--slo-p95", "1", "--out", tmp_path / "out")
    assert done.exit_code == 0, done.output
    (folder,) = (tmp_path / "out").iterdir()
    result = SweepResult.read(folder)
    (level,) = result.levels  # the default doubling stops at the first level that misses
    assert level.e2e_p95_s is None and level.errors == 2 and result.operating_point is None
    page = (folder / "sweep.html").read_text(encoding="utf-8")
    (marker,) = _markers(page).values()
    assert marker["tags"] == ["path"] and marker["class"] == "cross" and marker["data-state"] == "missed"
    assert "c=1: no answer" in [text for _, a, text in _svg(page) if a.get("class") == "label halo"]
    assert "no operating point" in page and "Operating point:" not in page


def _variant(result: SweepResult, **changes: Any) -> SweepResult:
    """The sweep as if it had run with other targets: each level's verdict and the operating point recomputed."""
    out = dataclasses.replace(result, **changes)
    out.levels = [
        dataclasses.replace(lv, meets_target=lv.errors == 0
                            and (out.slo_p95_s is None or lv.e2e_p95_s <= out.slo_p95_s)
                            and (out.slo_ttft_p95_s is None or lv.ttft_p95_s <= out.slo_ttft_p95_s))
        for lv in out.levels
    ]
    out.operating_point = operating_point(out.levels, out.usd_per_hour)
    return out


def test_chart_reads_without_target_with_one_level_and_with_a_ttft_target(swept: dict[str, Path]) -> None:
    result = SweepResult.read(swept["sweep"])
    free = render_sweep_page(_variant(result, slo_p95_s=None))
    assert not [a for _, a, _ in _svg(free) if a.get("class") == "target"]
    busiest = max(result.levels, key=lambda lv: lv.output_tokens_per_s)  # c=2 or c=4: both fill the 2 slots
    assert "No latency target was given" in free and _markers(free)[result.level_name(busiest)]["data-state"] == "operating"
    single = _variant(result, levels=result.levels[:1])
    one = render_sweep_page(single)
    assert list(_markers(one)) == ["c=1"] and _markers(one)["c=1"]["data-state"] == "operating"
    ttft_target = (result.levels[0].ttft_p95_s + result.levels[-1].ttft_p95_s) / 2
    both = render_sweep_page(_variant(result, slo_ttft_p95_s=ttft_target))
    targets = {a["data-target"] for _, a, _ in _svg(both) if a.get("class") == "target"}
    assert targets == {str(SLO), str(ttft_target)}
    squares = _markers(both, "TTFT p95")
    assert list(squares) == ["c=1", "c=2", "c=4"] and all(a["tags"] == ["rect"] for a in squares.values())
    unpriced = render_sweep_page(_variant(result, usd_per_hour=None))
    assert "no hardware price: $ unknown" in unpriced and "Per task" not in unpriced


def test_levels_are_named_by_the_sweeps_load_axis(tmp_path: Path) -> None:
    """A sweep by arrival rate (Poisson, open loop) labels its points by the offered rate; one by batch size, by the batch."""
    with FakeServer(ttft_s=0.02, per_token_s=0.005, tokens=TOKENS) as srv:
        done = _invoke({"OPENBENCH_CACHE_DIR": str(tmp_path / "cache")}, "sweep", _suite(srv, tmp_path / "suite.yaml"),
                       "--model", "engine", "--rate", "5,10", "--requests-per-level", "6", "--warmup", "1",
                       "--out", tmp_path / "out")
    assert done.exit_code == 0, done.output
    (folder,) = (tmp_path / "out").iterdir()
    result = SweepResult.read(folder)
    page = (folder / "sweep.html").read_text(encoding="utf-8")
    assert list(_markers(page)) == ["5 req/s", "10 req/s"]
    assert "<th class=num>offered req/s</th><th class=num>peak in flight</th>" in page
    assert f"Operating point: {result.operating_point.rate_per_s:g} req/s offered" in page
    batches = dataclasses.replace(result, load_axis="batch size",
                                  levels=[dataclasses.replace(lv, rate_per_s=None) for lv in result.levels])
    batches.operating_point = operating_point(batches.levels, batches.usd_per_hour)
    page = render_sweep_page(batches)
    assert [f"batch {lv.concurrency}" for lv in batches.levels] == list(_markers(page))
    assert f"Operating point: batch size {batches.operating_point.concurrency}" in page and "<th class=num>batch size</th>" in page


def test_browser_draws_the_sweep_page(chromium: str, swept: dict[str, Path], tmp_path: Path) -> None:
    shot = Path(__file__).parent / "artifacts" / "sweep.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    page = (swept["sweep"] / "sweep.html").read_text(encoding="utf-8")
    done = _browse(chromium, page, tmp_path, f"--screenshot={shot}", "--window-size=1280,1400")
    assert _console(done.stderr) == []
    assert sum(tag in ("circle", "path", "line") for tag, _, _ in elements(done.stdout, "chart-sweep")) >= 6
    assert shot.stat().st_size > 50_000  # a blank page is a few kB
