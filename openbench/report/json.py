"""The machine-readable summary (schema documented in the README, "JSON summary")."""

from __future__ import annotations

import json
from typing import Any

from openbench.summary import SummaryRow

SCHEMA_VERSION = 1


def summary_json(rows: list[SummaryRow], manifest: dict[str, Any], gate: dict[str, Any] | None = None) -> str:
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run": {
            key: manifest.get(key)
            for key in ("run_id", "status", "started_at", "ended_at", "openbench_version", "suite", "tasks", "seed")
        },
        "models": [
            {k: m.get(k) for k in ("id", "provider", "model", "status", "reason", "items", "errors", "cached", "busy_s", "price", "hardware_profile")}
            for m in manifest.get("models", [])
        ],
        "rows": [r.to_dict() for r in rows],
        "gate": gate,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
