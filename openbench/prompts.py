"""Prompt and parameter templates: Jinja2 in a sandbox, strict about missing fields."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


class TemplateError(ValueError):
    pass


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=1024)
def compile_template(source: str) -> Any:
    from jinja2 import TemplateSyntaxError

    try:
        return _env().from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on its line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=1024)
def fields_used(source: str) -> frozenset[str]:
    """Top-level case fields a template reads."""
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(_env().parse(source)))


def render(source: str, fields: dict[str, Any]) -> str:
    if "{" not in source:  # most scorer parameters are plain strings
        return source
    from jinja2 import UndefinedError
    from jinja2.exceptions import SecurityError

    try:
        return compile_template(source).render(fields)
    except UndefinedError as exc:
        raise TemplateError(f"template uses a field the case does not have: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"template refused by the sandbox: {exc}") from None


def render_value(value: Any, fields: dict[str, Any]) -> Any:
    """Render every string inside a scorer parameter (dicts and lists included)."""
    if isinstance(value, str):
        return render(value, fields)
    if isinstance(value, dict):
        return {k: render_value(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, fields) for v in value]
    return value
