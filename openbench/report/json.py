"""The machine-readable summary (schema documented in the README, "JSON summary")."""

from __future__ import annotations

import json
from typing import Any

from openbench.manifest import RunManifest
from openbench.summary import SummaryRow

SCHEMA_VERSION = 1


def summary_json(rows: list[SummaryRow], manifest: RunManifest, gate: dict[str, Any] | None = None) -> str:
    run = manifest.model_dump(mode="json", include={"run_id", "started_at", "ended_at", "openbench_version", "suite", "tasks", "seed"})
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run": {**run, "status": manifest.effective_status},
        "models": [
            m.model_dump(
                mode="json",
                include={"id", "provider", "model", "status", "reason", "items", "errors", "cached", "busy_s", "price", "hardware_profile"},
            )
            for m in manifest.models
        ],
        "rows": [r.to_dict() for r in rows],
        "gate": gate,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
