"""Prompt parity: did the models being compared see the same instructions?

Local models see their messages through a chat template, and some templates add
instructions the suite never gave (SmolLM2's and Qwen2.5's add a default system prompt
when there is none) or drop a system message. ``template_facts`` finds out by rendering
probe conversations; ``parity_warnings`` says, in plain words, where two models' prompts
differed. Every record also carries a fingerprint of exactly what was sent
(``ItemResult.prompt_sha256``): the rendered template text for local models, the
canonical messages for APIs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

_SYSTEM, _USER = "\x1fopenbench-system\x1f", "\x1fopenbench-user\x1f"
SHOWN_CHARS = 60


class TemplateFacts(BaseModel):
    """What a model's chat template does to the suite's messages."""

    model_config = ConfigDict(extra="ignore")

    #: Text the template adds as a system prompt when the conversation has none (None: adds nothing).
    injected_system: str | None = None
    #: "supported": a system message reaches the model as such; "dropped": the template leaves it out.
    system_role: Literal["supported", "dropped"] = "supported"
    #: "model": the template as shipped; "suite-only": openbench kept the template from adding a system prompt.
    mode: Literal["model", "suite-only"] = "model"
    #: Items whose rendered prompt held the injected system prompt.
    injected_items: int = 0
    #: Items whose messages held a system prompt (which a "dropped" template never showed the model).
    system_items: int = 0


def template_facts(render: Callable[[list[dict[str, str]]], str]) -> TemplateFacts:
    """Probe a template: render a user turn alone, then behind a system message, and compare."""
    alone = render([{"role": "user", "content": _USER}])
    try:
        with_system = render([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _USER}])
    except Exception:  # noqa: BLE001 - templates that refuse a system role raise
        return TemplateFacts(system_role="dropped")
    if _SYSTEM not in with_system:
        return TemplateFacts(system_role="dropped")
    before, after = with_system.split(_SYSTEM, 1)
    injected = None
    if alone.startswith(before) and alone.endswith(after) and len(alone) > len(before) + len(after):
        injected = alone[len(before) : len(alone) - len(after)].strip() or None
    return TemplateFacts(injected_system=injected)


def fingerprint(sent: Any) -> str:
    """SHA-256 of what was sent: a rendered prompt (str), or messages as canonical JSON."""
    text = sent if isinstance(sent, str) else json.dumps(sent, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parity_warnings(models: list[Any]) -> list[str]:
    """Plain-words warnings about instructions some of ``models`` (manifest ModelEntry objects) saw and others did not."""
    out = []
    for entry in models:
        facts = entry.template
        if facts is None:
            continue
        others = ", ".join(m.id for m in models if m is not entry) or "the other models"
        if facts.injected_system and facts.injected_items:
            shown = facts.injected_system if len(facts.injected_system) <= SHOWN_CHARS else facts.injected_system[:SHOWN_CHARS] + "…"
            out.append(
                f"{entry.id}'s template added the system prompt '{shown}' to {facts.injected_items} item(s) where the suite "
                f"gave none; {others} did not see it. Give the suite a system prompt, or set chat_template: suite-only."
            )
        saw = [m.id for m in models if m is not entry and (m.template is None or m.template.system_role != "dropped")]
        if facts.system_role == "dropped" and facts.system_items and saw:
            out.append(
                f"{entry.id}'s template drops system messages: on {facts.system_items} item(s) it never saw the suite's "
                f"system prompt; {', '.join(saw)} did."
            )
    return out
