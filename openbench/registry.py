"""Name → object registries with lazy ``"module:attr"`` targets.

Built-in providers and scorers are named here as strings, so nothing heavy is
imported until a suite actually names them. Third-party packages add entries
through the ``openbench.providers`` and ``openbench.scorers`` entry-point
groups, which are also only loaded when their name is asked for.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from openbench.errors import OpenbenchError

PROVIDERS: dict[str, str] = {
    "hf": "openbench.providers.hf:HFProvider",
    "openai": "openbench.providers.openai:OpenAIProvider",
    "openai-compatible": "openbench.providers.openai:OpenAICompatibleProvider",
    "anthropic": "openbench.providers.anthropic:AnthropicProvider",
    "reference": "openbench.providers.reference:ReferenceProvider",
    "fake": "openbench.providers.fake:FakeProvider",
}

SCORERS: dict[str, str] = {
    "exact": "openbench.scorers.text:exact",
    "contains": "openbench.scorers.text:contains",
    "regex": "openbench.scorers.text:regex",
    "numeric": "openbench.scorers.text:numeric",
    "choice": "openbench.scorers.text:choice",
    "json_valid": "openbench.scorers.structured:json_valid",
    "json_schema": "openbench.scorers.structured:json_schema",
    "json_fields": "openbench.scorers.structured:json_fields",
    "tool_call": "openbench.scorers.tools:tool_call",
    "no_tool_call": "openbench.scorers.tools:no_tool_call",
    "judge": "openbench.scorers.judge:judge",
    "similarity": "openbench.scorers.similarity:similarity",
    "rouge": "openbench.scorers.overlap:rouge",
    "bleu": "openbench.scorers.overlap:bleu",
    "chrf": "openbench.scorers.overlap:chrf",
    "code": "openbench.scorers.code:code",
    "python": "openbench.scorers.custom:python",
}

_GROUPS = {"provider": ("openbench.providers", PROVIDERS), "scorer": ("openbench.scorers", SCORERS)}


class UnknownName(OpenbenchError):
    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} '{name}'{did_you_mean(name, known)}. Known: {', '.join(sorted(known))}")


def did_you_mean(name: str, known: list[str] | set[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _entry_points(group: str) -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


def names(kind: str) -> list[str]:
    """Every known name of a kind: built-ins plus installed entry points."""
    group, builtins = _GROUPS[kind]
    return sorted(set(builtins) | set(_entry_points(group)))


def exists(kind: str, name: str) -> bool:
    _, builtins = _GROUPS[kind]
    return name in builtins or name in names(kind)


def load_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolve(kind: str, name: str) -> Any:
    """Import and return the object registered under ``name``."""
    group, builtins = _GROUPS[kind]
    if name in builtins:
        return load_target(builtins[name])
    eps = _entry_points(group)
    if name in eps:
        return eps[name].load()
    raise UnknownName(kind, name, names(kind))
