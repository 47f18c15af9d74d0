"""How the SDK providers read a stream: server-sent events read by read (``sse.batches``), and the
cycle collector around a run (``collector``)."""

from __future__ import annotations

import asyncio
import gc
from time import perf_counter
from typing import AsyncIterator

import pytest

from openbench import collector
from openbench.providers.base import AttemptError
from openbench.providers.sse import DONE, batches, decode


async def _reads(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


def _all(*chunks: bytes) -> list[list[tuple[str, str]]]:
    async def go() -> list[list[tuple[str, str]]]:
        return [found async for _, found in batches(_reads(*chunks))]

    return asyncio.run(go())


def test_events_keep_their_names_and_lines_cut_between_reads_wait_for_their_end() -> None:
    got = _all(
        b'event: ping\ndata: {"type":"ping"}\n\nevent: content_block_delta\nda',
        b'ta: {"text":"caf\xc3',  # a line, and a UTF-8 character, cut between two reads
        b'\xa9"}\r\n\r\n: keep-alive comment\n\ndata: {"n":1}\ndata: [DONE]',  # no newline at the very end
    )
    assert got == [
        [("ping", '{"type":"ping"}')],
        [("content_block_delta", '{"text":"café"}'), ("", '{"n":1}')],
        [("", "[DONE]")],
    ]


def test_a_read_without_data_lines_yields_nothing() -> None:
    assert _all(b"event: ping\n", b"\n", b": comment\n\n") == []


def test_each_read_is_stamped_when_it_arrived_before_it_is_parsed() -> None:
    sent: list[float] = []
    received: list[float] = []

    async def reads() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0.02)
            sent.append(perf_counter())
            yield b'data: {"i":%d}\n\n' % i

    async def go() -> list[float]:
        stamps = []
        async for at, found in batches(reads()):
            received.append(perf_counter())
            stamps.append(at)
            await asyncio.sleep(0.01)  # the consumer's own work never moves the next read's stamp
        return stamps

    stamps = asyncio.run(go())
    assert len(stamps) == 3
    for sent_at, at, got_at in zip(sent, stamps, received):
        assert sent_at <= at <= got_at
    assert all(b - a >= 0.02 for a, b in zip(stamps, stamps[1:]))


def test_decode() -> None:
    assert decode("[DONE]") is DONE
    assert decode("") is None
    assert decode('{"a": [1]}') == {"a": [1]}
    with pytest.raises(AttemptError) as err:
        decode('{"a": <<not json>>')
    assert err.value.kind == "malformed" and err.value.retryable


def test_the_collector_is_off_while_a_run_starts_then_on_with_what_loaded_frozen() -> None:
    assert gc.isenabled()
    with collector.starting():
        assert not gc.isenabled()
        collector.started()
        assert gc.isenabled() and gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0  # the caller gets its collector back whole


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    try:
        with collector.starting():
            collector.started()
            assert not gc.isenabled()
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_a_run_in_process_leaves_the_collector_on_and_nothing_frozen(write_suite, invoke, tmp_path) -> None:
    suite = write_suite(
        """
name: gc
models:
  - {id: own, provider: fake, model: m, params: {ttft_s: 0.001}}
tasks:
  - {name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x, answer: ok}]}, scorers: [{type: contains, expected: ok}]}
"""
    )
    assert invoke("run", str(suite), "--out", str(tmp_path / "out")).exit_code == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_runner_driven_outside_a_run_leaves_the_collector_alone() -> None:
    collector.started()
    assert gc.isenabled() and gc.get_freeze_count() == 0
