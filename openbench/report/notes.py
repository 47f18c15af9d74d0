"""Footnotes every report shows under its table: what openbench changed in what a suite asked
for, answers that came from a non-default endpoint, and reasoning tokens billed as output."""

from __future__ import annotations

from typing import Iterable

from openbench.manifest import RunManifest
from openbench.summary import ALL_TASKS, SummaryRow


def model_notes(manifest: RunManifest, rows: Iterable[SummaryRow] = ()) -> list[str]:
    notes: list[str] = []
    for m in manifest.models:
        notes += m.details.get("adjustments") or []
        if m.details.get("endpoint_default") is False:
            notes.append(f"{m.id}: answers came from {m.endpoint}, not the vendor's default endpoint")
    for r in rows:
        if r.task == ALL_TASKS and r.reasoning_tokens_per_task:
            thinking = f", thinking began after {r.thinking_p50_s:.3f} s (median)" if r.thinking_p50_s is not None else ""
            notes.append(
                f"{r.model}: {r.reasoning_tokens_per_task:,.0f} reasoning tokens per task, counted in tok out and billed as output{thinking}"
            )
    return notes
