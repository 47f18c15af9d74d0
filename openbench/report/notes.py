"""Footnotes every report shows under its table: what openbench changed in what a suite asked
for, answers that came from a non-default endpoint, reasoning tokens billed as output, and
instructions a chat template added or dropped (prompt parity)."""

from __future__ import annotations

from typing import Iterable

from openbench.manifest import RunManifest
from openbench.parity import parity_warnings
from openbench.summary import ALL_TASKS, SummaryRow


def model_notes(manifest: RunManifest, rows: Iterable[SummaryRow] = ()) -> list[str]:
    notes: list[str] = []
    for m in manifest.models:
        notes += m.details.get("adjustments") or []
        if m.details.get("endpoint_default") is False:
            notes.append(f"{m.id}: answers came from {m.endpoint}, not the vendor's default endpoint")
    notes += parity_warnings(manifest.models)
    for r in rows:
        if r.samples_per_item and r.task != ALL_TASKS:
            ks = ", ".join(f"pass@{k} {v:.2f}" for k, v in (r.pass_at_k or {}).items())
            notes.append(
                f"{r.model} on {r.task}: {r.samples_per_item} samples per item (statistics use each item's mean); "
                f"consistency {r.consistency:.0%} (items whose samples all pass or all fail); {ks}"
            )
        if r.task == ALL_TASKS and r.tokens_counted:
            notes.append(
                f"{r.model}: its server sent no token usage; openbench counted the tokens (its tokenize endpoint or the "
                "model's tokenizer), and prices them the same way"
            )
        if r.task == ALL_TASKS and r.reasoning_tokens_per_task:
            thinking = f", thinking began after {r.thinking_p50_s:.3f} s (median)" if r.thinking_p50_s is not None else ""
            notes.append(
                f"{r.model}: {r.reasoning_tokens_per_task:,.0f} reasoning tokens per task, counted in tok out and billed as output{thinking}"
            )
    return notes
