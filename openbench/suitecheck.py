"""Checks of a loaded suite that need more than its schema: options each provider reads, scorers and
their parameters, templates, conversations and hardware; and warnings about same-family judges."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import ValidationError

from openbench import registry
from openbench.suite import PROVIDER_OPTIONS, LoadedSuite, ModelSpec, ParamProblem, ScorerSpec


def check_suite(suite: LoadedSuite) -> None:
    """Raise the first problem as a SuiteError at its file:line."""
    _check_provider_options(suite)
    _check_scorers(suite)
    _check_templates(suite)
    _check_conversations(suite)
    _check_hardware(suite)
    _check_gate(suite)


def _check_gate(suite: LoadedSuite) -> None:
    """A gate block names models of the suite (else a plain run would spend, and only `gate` would object)."""
    gate = suite.spec.gate
    known = [m.id for m in suite.spec.models]
    for side in ("baseline", "candidate"):
        name = getattr(gate, side) if gate is not None else None
        if name is not None and name not in known:
            raise suite.error(f"no model '{name}'{registry.did_you_mean(name, known)}. Known: {', '.join(known)}", ("gate", side))


def model_family(model: ModelSpec) -> str:
    """A coarse family name ("gpt", "claude", "llama", "qwen", ...) from the model name."""
    import re

    name = model.model.rsplit("/", 1)[-1].lower()
    name = re.sub(r"\.gguf$", "", name)
    return re.split(r"[^a-z]+", name)[0] or name


def judge_warnings(suite: LoadedSuite) -> list[str]:
    """Judges that share a family with a model they grade tend to favour it."""
    out = []
    for task in suite.spec.tasks:
        for scorer in task.scorers:
            if scorer.type != "judge" or "model" not in scorer.params:
                continue
            judge = suite.model(scorer.params["model"])
            family = model_family(judge)
            for m in suite.spec.models:
                if m.id != judge.id and model_family(m) == family:
                    out.append(
                        f"task '{task.name}': judge '{judge.id}' and candidate '{m.id}' are both '{family}' models; "
                        "judges tend to favour their own family"
                    )
    return out


def _check_provider_options(suite: LoadedSuite) -> None:
    """An option that means nothing to a model's provider is an error, not silently ignored."""
    for mi, model in enumerate(suite.spec.models):
        accepted = registry.resolve("provider", model.provider).options
        for name in PROVIDER_OPTIONS:
            if name in model.model_fields_set and name not in accepted:
                users = [p for p in registry.names("provider") if name in getattr(registry.resolve("provider", p), "options", ())]
                raise suite.error(
                    f"option '{name}' means nothing to the {model.provider} provider"
                    + (f" (it is for: {', '.join(users)})" if users else ""),
                    ("models", mi, name),
                )


def _check_scorers(suite: LoadedSuite) -> None:
    for ti, task in enumerate(suite.spec.tasks):
        labels = [s.name for s in task.scorers]
        for si, spec in enumerate(task.scorers):
            loc = ("tasks", ti, "scorers", si)
            if labels.count(spec.name) > 1:
                raise suite.error(f"scorer '{spec.name}' is used twice; give each a distinct `label`", loc)
            try:
                fn = registry.resolve("scorer", spec.type)
            except registry.UnknownName as exc:
                raise suite.error(str(exc), loc + ("type",)) from None
            _check_params(suite, fn, spec, loc)


def _check_params(suite: LoadedSuite, fn: Any, spec: ScorerSpec, loc: tuple) -> None:
    sig = inspect.signature(fn)
    # ctx and tool_calls are given by the runner (see scorers/base.py), never by the suite.
    params = [p for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY and p.name not in ("ctx", "tool_calls")]
    validate = getattr(fn, "validate_params", None)
    if validate is not None:
        problem = validate(spec.params, suite)
        if isinstance(problem, ParamProblem):
            raise suite.error(problem.message, loc + ((problem.param,) if problem.param else ()))
        if problem:
            raise suite.error(problem, loc)
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    allowed = {p.name for p in params}
    for key in spec.params:
        if key not in allowed:
            raise suite.error(
                f"scorer '{spec.type}' has no parameter '{key}'{registry.did_you_mean(key, allowed)}; "
                f"parameters: {', '.join(sorted(allowed)) or 'none'}",
                loc + (key,),
            )
    for p in params:
        if p.default is inspect.Parameter.empty and p.name not in spec.params and p.name != "expected":
            raise suite.error(f"scorer '{spec.type}' needs the parameter '{p.name}'", loc)
    _check_param_types(suite, fn, spec, loc)


def _check_param_types(suite: LoadedSuite, fn: Any, spec: ScorerSpec, loc: tuple) -> None:
    """Each parameter's value must fit the scorer's annotation (a string may always be a template)."""
    from pydantic import TypeAdapter

    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations (a plugin's) are not checked
        return
    for key, value in spec.params.items():
        hint = hints.get(key)
        if hint is None or hint is Any or (isinstance(value, str) and "{{" in value):
            continue
        try:
            TypeAdapter(hint).validate_python(value)
        except ValidationError as exc:
            expected = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise suite.error(
                f"scorer '{spec.type}' parameter '{key}' expects {expected}, got {value!r:.60}: "
                f"{exc.errors(include_url=False)[0]['msg']}",
                loc + (key,),
            ) from None


def _check_templates(suite: LoadedSuite) -> None:
    from openbench.prompts import TemplateError, compile_template

    sources = [(("defaults", "system"), suite.spec.defaults.system)]
    for ti, task in enumerate(suite.spec.tasks):
        sources += [(("tasks", ti, "prompt"), task.prompt), (("tasks", ti, "system"), task.system)]
        sources += [(("tasks", ti, "messages", mi, "content"), m.content) for mi, m in enumerate(task.messages or ())]
    for loc, source in sources:
        if source is None:
            continue
        try:
            compile_template(source)
        except TemplateError as exc:
            raise suite.error(str(exc), loc) from None


def _check_conversations(suite: LoadedSuite) -> None:
    """A task's template turns must form a conversation every provider accepts."""
    from openbench.conversation import turn_order_problem

    for ti, task in enumerate(suite.spec.tasks):
        if task.messages is None:
            continue
        roles = [m.role for m in task.messages]
        if "system" in roles and task.system is not None:
            raise suite.error("give the system prompt once: in `system` or as the first message, not both", ("tasks", ti, "system"))
        problem = turn_order_problem(roles)
        if problem is not None:
            index, message = problem
            raise suite.error(message, ("tasks", ti, "messages", index, "role"))


def _check_hardware(suite: LoadedSuite) -> None:
    for mi, model in enumerate(suite.spec.models):
        try:
            suite.spec.hardware_for(model)
        except (KeyError, ValueError, TypeError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            if isinstance(model.hardware, str):
                from openbench import pricing

                known = sorted({*pricing.BUILTIN_HARDWARE, *suite.spec.hardware})
                message = f"unknown hardware '{model.hardware}'{registry.did_you_mean(model.hardware, known)}. Known: {', '.join(known)}"
            raise suite.error(message, ("models", mi, "hardware")) from None
