"""Tests for openbench.pricing: exact cost arithmetic, catalogue lookups,
override precedence, self-hosted costs, break-even and volume parsing.

Expected values are computed by hand in the comments next to each assert.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from openbench.pricing import (
    BUILTIN_HARDWARE,
    DEFAULT_UTILISATION,
    Hardware,
    Price,
    PriceTier,
    SelfHostedCost,
    break_even_tasks_per_month,
    busy_seconds_per_task,
    cost,
    lookup_price,
    monthly_projection,
    parse_volume,
    price_from_override,
    resolve_hardware,
    resolve_price,
    self_hosted_cost_per_task,
)
from openbench.records import Usage

REL = 1e-12
REPO = Path(__file__).resolve().parents[1]


def approx(x: float) -> object:
    return pytest.approx(x, rel=REL, abs=1e-15)


# --------------------------------------------------------------------------- cost


MINI = Price(input_per_mtok=0.15, output_per_mtok=0.60, cache_read_per_mtok=0.075)
HAIKU = Price(
    input_per_mtok=1.0,
    output_per_mtok=5.0,
    cache_read_per_mtok=0.10,
    cache_write_per_mtok=1.25,
    batch_discount=0.5,
)


def test_cost_plain_input_output() -> None:
    # 1000 * 0.15 + 500 * 0.60 = 150 + 300 = 450 per 1e6 -> 0.00045
    assert cost(Usage(input_tokens=1000, output_tokens=500), MINI) == approx(0.00045)


def test_cost_cache_read_discount() -> None:
    u = Usage(input_tokens=10_000, output_tokens=2_000, cached_input_tokens=4_000)
    # uncached 6000 * 0.15 = 900; cached 4000 * 0.075 = 300; out 2000 * 0.60 = 1200
    # total 2400 / 1e6
    assert cost(u, MINI) == approx(0.0024)


def test_cost_cache_read_falls_back_to_input_rate() -> None:
    p = Price(input_per_mtok=2.0, output_per_mtok=8.0)
    u = Usage(input_tokens=1_000, output_tokens=0, cached_input_tokens=500)
    # 500 * 2 + 500 * 2 = 2000 / 1e6
    assert cost(u, p) == approx(0.002)


def test_cost_cache_write() -> None:
    u = Usage(input_tokens=10_000, output_tokens=1_000, cached_input_tokens=2_000, cache_write_tokens=3_000)
    # uncached 5000 * 1 = 5000; read 2000 * 0.10 = 200; write 3000 * 1.25 = 3750;
    # out 1000 * 5 = 5000; total 13950 / 1e6
    assert cost(u, HAIKU) == approx(0.01395)


def test_cost_cache_write_falls_back_to_input_rate() -> None:
    u = Usage(input_tokens=1_000, output_tokens=0, cache_write_tokens=1_000)
    # 1000 * 0.15 (no cache-write rate: billed as input) = 150 / 1e6
    assert cost(u, MINI) == approx(0.00015)


def test_cost_batch_discount() -> None:
    u = Usage(input_tokens=10_000, output_tokens=1_000, cached_input_tokens=2_000, cache_write_tokens=3_000)
    assert cost(u, HAIKU, batch=True) == approx(0.01395 * 0.5)  # 0.006975
    # no discount configured -> batch changes nothing
    assert cost(Usage(input_tokens=1000, output_tokens=500), MINI, batch=True) == approx(0.00045)
    p = Price(input_per_mtok=10.0, output_per_mtok=30.0, batch_discount=0.25)
    # (1000 * 10 + 1000 * 30) * 0.75 = 30000 / 1e6
    assert cost(Usage(input_tokens=1000, output_tokens=1000), p, batch=True) == approx(0.03)


def test_cost_reasoning_rate() -> None:
    u = Usage(input_tokens=1_000, output_tokens=3_000, reasoning_tokens=2_000)
    with_rate = Price(input_per_mtok=1.0, output_per_mtok=4.0, reasoning_per_mtok=2.0)
    # 1000 * 1 + (3000 - 2000) * 4 + 2000 * 2 = 1000 + 4000 + 4000 = 9000
    assert cost(u, with_rate) == approx(0.009)
    # reasoning_per_mtok None -> reasoning billed as output: 1000 + 3000 * 4 = 13000
    assert cost(u, Price(input_per_mtok=1.0, output_per_mtok=4.0)) == approx(0.013)


def test_cost_is_exact_decimal() -> None:
    # float arithmetic would give 0.30000000000000004-style noise; we return the
    # float nearest to the exact decimal result.
    p = Price(input_per_mtok=0.1, output_per_mtok=0.2)
    assert cost(Usage(input_tokens=1_000_000, output_tokens=1_000_000), p) == 0.3


def test_cost_tiers() -> None:
    p = Price(
        input_per_mtok=3.0,
        output_per_mtok=15.0,
        tiers=(PriceTier(above_input_tokens=200_000, input_per_mtok=6.0, output_per_mtok=22.5),),
    )
    # at the threshold: base rates; 200000 * 3 + 1000 * 15 = 615000
    assert cost(Usage(input_tokens=200_000, output_tokens=1_000), p) == approx(0.615)
    # above: all tokens at tier rates; 200001 * 6 + 1000 * 22.5 = 1222506
    assert cost(Usage(input_tokens=200_001, output_tokens=1_000), p) == approx(1.222506)


def test_unknown_price_or_tokens_is_none_not_zero() -> None:
    u = Usage(input_tokens=1000, output_tokens=500)
    assert cost(u, None) is None
    assert cost(Usage(), MINI) is None
    assert cost(Usage(input_tokens=10, output_tokens=None), MINI) is None
    assert cost(Usage(input_tokens=None, output_tokens=10), MINI) is None
    assert lookup_price("openai", "definitely-not-a-model-xyz") is None
    assert lookup_price("vllm", "gpt-4o-mini") is None  # self-hosted: not a catalogue provider
    assert lookup_price("openai", "") is None
    assert resolve_price("openai", "definitely-not-a-model-xyz") is None
    # zero tokens is a real zero, not unknown
    assert cost(Usage(input_tokens=0, output_tokens=0), MINI) == 0.0


def test_cost_rejects_inconsistent_usage() -> None:
    with pytest.raises(ValueError, match="exceed"):
        cost(Usage(input_tokens=100, output_tokens=1, cached_input_tokens=80, cache_write_tokens=30), MINI)
    with pytest.raises(ValueError, match="reasoning"):
        cost(Usage(input_tokens=1, output_tokens=10, reasoning_tokens=11), MINI)
    with pytest.raises(ValueError):
        cost(Usage(input_tokens=-1, output_tokens=1), MINI)


# ---------------------------------------------------------------------- catalogue


def test_catalogue_gpt_4o_mini() -> None:
    p = lookup_price("openai", "gpt-4o-mini")
    assert p is not None
    assert (p.input_per_mtok, p.output_per_mtok, p.cache_read_per_mtok) == (0.15, 0.60, 0.075)
    assert p.cache_write_per_mtok is None  # OpenAI bills no cache writes
    assert p.reasoning_per_mtok is None
    assert p.batch_discount == 0.5
    assert p.source == "genai-prices"
    assert p.model_ref == "gpt-4o-mini"
    assert p.catalogue_version is not None and p.catalogue_version.startswith("genai-prices ")
    assert p.as_of is not None and date.fromisoformat(p.as_of)


def test_catalogue_claude_haiku_4_5() -> None:
    p = lookup_price("anthropic", "claude-haiku-4-5")
    assert p is not None
    assert (p.input_per_mtok, p.output_per_mtok, p.cache_read_per_mtok) == (1.0, 5.0, 0.10)
    assert p.cache_write_per_mtok == 1.25  # 5-minute cache write (1.25x input)
    assert p.batch_discount == 0.5
    assert p.model_ref == "claude-haiku-4-5"


@pytest.mark.parametrize(
    ("provider", "model", "inp", "out"),
    [
        ("openai", "gpt-4.1", 2.0, 8.0),
        ("openai", "gpt-4.1-mini", 0.40, 1.60),
        ("anthropic", "claude-sonnet-4-5", 3.0, 15.0),
    ],
)
def test_catalogue_other_models(provider: str, model: str, inp: float, out: float) -> None:
    p = lookup_price(provider, model)
    assert p is not None
    assert (p.input_per_mtok, p.output_per_mtok) == (inp, out)
    assert p.model_ref == model


@pytest.mark.parametrize(
    ("provider", "model", "ref"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "GPT-4o-mini", "gpt-4o-mini"),
        ("openai", "openai/gpt-4o-mini", "gpt-4o-mini"),
        ("openai", " openai:gpt-4.1-mini ", "gpt-4.1-mini"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("Anthropic", "anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
    ],
)
def test_catalogue_name_normalisation(provider: str, model: str, ref: str) -> None:
    p = lookup_price(provider, model)
    assert p is not None and p.model_ref == ref


def test_catalogue_is_dated_and_long_context_tiers() -> None:
    p = lookup_price("anthropic", "claude-sonnet-4-5", at=date(2026, 10, 1))
    assert p is not None and p.as_of == "2026-10-01"
    assert [t.above_input_tokens for t in p.tiers] == [200_000]
    assert (p.tiers[0].input_per_mtok, p.tiers[0].output_per_mtok) == (6.0, 22.5)


def test_cost_matches_genai_prices_own_calculation() -> None:
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    cases = [
        ("openai", "gpt-4o-mini", Usage(input_tokens=12_345, output_tokens=678, cached_input_tokens=4_096)),
        (
            "anthropic",
            "claude-haiku-4-5",
            Usage(input_tokens=9_000, output_tokens=1_234, cached_input_tokens=3_000, cache_write_tokens=2_000),
        ),
        ("anthropic", "claude-sonnet-4-5", Usage(input_tokens=250_000, output_tokens=1_000)),
        ("openai", "gpt-4.1", Usage(input_tokens=777, output_tokens=3_333, reasoning_tokens=1_000)),
    ]
    for provider, model, u in cases:
        theirs = calc_price(
            GUsage(
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_read_tokens=u.cached_input_tokens,
                cache_write_tokens=u.cache_write_tokens,
            ),
            model_ref=model,
            provider_id=provider,
        ).total_price
        assert cost(u, lookup_price(provider, model)) == approx(float(theirs)), model


def test_lookup_is_lazy_and_offline() -> None:
    """Importing pricing must not import genai_prices; lookups work with the
    network blocked and start no genai-prices update thread."""
    code = textwrap.dedent(
        """
        import socket, sys, threading
        import openbench.pricing as pricing
        assert "genai_prices" not in sys.modules, "genai_prices imported eagerly"

        def blocked(*a, **k):
            raise AssertionError("network access attempted")
        socket.socket.connect = blocked
        socket.create_connection = blocked
        socket.getaddrinfo = blocked

        p = pricing.lookup_price("openai", "gpt-4o-mini")
        assert p is not None and p.input_per_mtok == 0.15, p
        from genai_prices import data_snapshot
        assert data_snapshot.get_snapshot().from_auto_update is False
        names = [t.name for t in threading.enumerate()]
        assert not any("genai_prices" in n for n in names), names
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


# ---------------------------------------------------------------------- overrides


def test_override_precedence_suite_over_catalogue() -> None:
    p = resolve_price("openai", "gpt-4o-mini", {"input": 0.10, "output_per_mtok": 0.50})
    assert p is not None
    assert p.input_per_mtok == 0.10  # the suite beats the catalogue
    assert p.output_per_mtok == 0.50
    assert p.cache_read_per_mtok == 0.075  # catalogue fills the rest
    assert p.batch_discount == 0.5
    assert p.source == "suite"
    assert p.model_ref == "gpt-4o-mini"

    suite_only = resolve_price("openai", "gpt-4o-mini", {"cache_read": 0.05})
    assert suite_only is not None and suite_only.source == "suite"
    assert (suite_only.input_per_mtok, suite_only.cache_read_per_mtok) == (0.15, 0.05)

    catalogue = resolve_price("openai", "gpt-4o-mini", {})
    assert catalogue == lookup_price("openai", "gpt-4o-mini")


def test_override_for_unknown_model_needs_full_price() -> None:
    p = resolve_price("openai", "my-finetune-xyz", {"input": 0.3, "output": 1.2})
    assert p == Price(input_per_mtok=0.3, output_per_mtok=1.2, source="suite")
    with pytest.raises(ValueError, match="output_per_mtok"):
        resolve_price("openai", "my-finetune-xyz", {"input": 0.3})


def test_override_validation_and_clearing() -> None:
    base = lookup_price("anthropic", "claude-haiku-4-5")
    with pytest.raises(ValueError, match="unknown price field"):
        price_from_override({"inptu": 1}, base)
    with pytest.raises(ValueError):
        price_from_override({"input": -1}, base)
    with pytest.raises(ValueError):
        price_from_override({"batch_discount": 1.0}, base)
    with pytest.raises(ValueError):
        price_from_override({"output": None}, base)
    cleared = price_from_override({"cache_write": None, "as_of": "2026-09"}, base)
    assert cleared.cache_write_per_mtok is None and cleared.as_of == "2026-09"
    assert cleared.cache_read_per_mtok == 0.10 and cleared.source == "suite"


def test_override_drops_catalogue_tiers() -> None:
    base = lookup_price("anthropic", "claude-sonnet-4-5")
    assert base is not None and base.tiers
    assert price_from_override({"batch_discount": 0.4}, base).tiers == base.tiers
    assert price_from_override({"input": 2.5}, base).tiers == ()


# ------------------------------------------------------------------- self-hosted


def test_builtin_hardware() -> None:
    assert set(BUILTIN_HARDWARE) == {"cpu-2core", "l4", "a100-80gb", "h100"}
    assert all(h.as_of == "2026-11" for h in BUILTIN_HARDWARE.values())
    assert 2.0 <= BUILTIN_HARDWARE["h100"].usd_per_hour <= 4.0


def test_resolve_hardware() -> None:
    assert resolve_hardware("h100") is BUILTIN_HARDWARE["h100"]
    two = resolve_hardware({"name": "h100", "count": 2, "usd_per_hour": 2.4})
    assert (two.count, two.usd_per_hour, two.accelerator, two.source) == (2, 2.4, "NVIDIA H100 80GB", "suite")
    suite = {"h100": {"usd_per_hour": 2.2}, "my-box": {"accelerator": "RTX 4090", "usd_per_hour": 0.4}}
    assert resolve_hardware("h100", suite).usd_per_hour == 2.2
    mine = resolve_hardware("my-box", suite)
    assert (mine.name, mine.accelerator, mine.count, mine.usd_per_hour) == ("my-box", "RTX 4090", 1, 0.4)
    custom = resolve_hardware({"name": "rig", "usd_per_hour": 1.0, "gpus": 4})
    assert (custom.count, custom.accelerator) == (4, "rig")
    with pytest.raises(KeyError, match="known"):
        resolve_hardware("tpu-v9")
    with pytest.raises(ValueError, match="usd_per_hour"):
        resolve_hardware({"name": "rig"})
    with pytest.raises(ValueError):
        resolve_hardware({"name": "h100", "count": 0})


def test_self_hosted_cost_per_task() -> None:
    h100 = BUILTIN_HARDWARE["h100"]  # $3.00/h
    # busy time = 36 s wall / 100 tasks = 0.36 s/task
    busy = busy_seconds_per_task(36.0, 100)
    assert busy == approx(0.36)
    c = self_hosted_cost_per_task(h100, busy)
    # usage = 3.00 * 1 * 0.36 / 3600 = 0.0003; dedicated = 0.0003 / 0.5
    assert DEFAULT_UTILISATION == 0.5
    assert c == SelfHostedCost(dedicated_usd=approx(0.0006), usage_usd=approx(0.0003))
    two = Hardware("2xh100", "NVIDIA H100 80GB", 2, 3.0, "2026-11", "test")
    c2 = self_hosted_cost_per_task(two, 0.36, utilisation=0.25)
    assert c2.usage_usd == approx(0.0006) and c2.dedicated_usd == approx(0.0024)
    with pytest.raises(ValueError):
        self_hosted_cost_per_task(h100, 0.36, utilisation=0)
    with pytest.raises(ValueError):
        self_hosted_cost_per_task(h100, 0.36, utilisation=1.5)


def _brute_cheaper(volume: int, a: float, box_usd: float, capacity: float) -> bool:
    return math.ceil(volume / capacity) * box_usd < volume * a


def test_break_even_simple() -> None:
    h100 = BUILTIN_HARDWARE["h100"]
    # box = 3.00 * 730 = $2190/month; capacity = 730 * 3600 / 0.36 = 7.3M tasks/month;
    # busy-box cost per task = 2190 / 7.3M = $0.0003. API at $0.0006/task (u = 0.5):
    # break-even = 2190 / 0.0006 = 3.65M tasks/month.
    v = break_even_tasks_per_month(0.0006, h100, 0.36)
    assert v == approx(3_650_000)
    box, cap = 2190.0, 7_300_000.0
    assert not _brute_cheaper(3_650_000, 0.0006, box, cap)  # equal at the break-even
    for vol in (3_650_001, 5_000_000, 7_300_000, 7_300_001, 14_600_001, 50_000_000):
        assert _brute_cheaper(vol, 0.0006, box, cap)


def test_break_even_sawtooth() -> None:
    h100 = BUILTIN_HARDWARE["h100"]
    # API at $0.000375 (u = 0.0003 / 0.000375 = 0.8, 1/(1-u) = 5 -> K = 4):
    # one box wins above 2190 / 0.000375 = 5.84M, but just above each capacity
    # step the API wins again until 4 * 2190 / 0.000375 = 23.36M.
    v = break_even_tasks_per_month(0.000375, h100, 0.36)
    assert v == approx(23_360_000)
    box, cap = 2190.0, 7_300_000.0
    assert _brute_cheaper(5_840_001, 0.000375, box, cap)
    assert not _brute_cheaper(21_900_001, 0.000375, box, cap)  # 4 boxes needed, API cheaper
    assert not _brute_cheaper(23_360_000, 0.000375, box, cap)
    for vol in range(23_360_001, 80_000_000, 1_234_567):
        assert _brute_cheaper(vol, 0.000375, box, cap), vol


def test_break_even_never_or_unknown() -> None:
    h100 = BUILTIN_HARDWARE["h100"]
    assert break_even_tasks_per_month(0.0003, h100, 0.36) is None  # equals busy-box cost
    assert break_even_tasks_per_month(0.0001, h100, 0.36) is None  # API cheaper still
    assert break_even_tasks_per_month(None, h100, 0.36) is None
    # at max 50% utilisation capacity halves: busy-box cost 0.0006 -> API at 0.0006 never loses
    assert break_even_tasks_per_month(0.0006, h100, 0.36, max_utilisation=0.5) is None


def test_monthly_projection() -> None:
    assert monthly_projection(3_650_000, 0.0006) == approx(2190.0)
    assert monthly_projection("50k/day", 0.001) == approx(50_000 * 730 / 24 * 0.001)
    assert monthly_projection(1_000, None) is None


# ------------------------------------------------------------------------ volume


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1_000_000/month", 1_000_000),
        ("1e6", 1_000_000),
        ("1,000,000", 1_000_000),
        ("50k/day", 50_000 * 730 / 24),  # a month is 730 h = 30.4167 days
        ("2.5M per week", 2_500_000 * 730 / 168),
        ("1000/h", 730_000),
        ("12M/year", 1_000_000),
        ("0", 0),
        (250_000, 250_000),
    ],
)
def test_parse_volume(text: str | int, expected: float) -> None:
    assert parse_volume(text) == approx(expected)


@pytest.mark.parametrize("text", ["", "abc", "10/fortnight", "-5/day", "5k/", float("inf")])
def test_parse_volume_rejects(text: str | float) -> None:
    with pytest.raises(ValueError):
        parse_volume(text)
