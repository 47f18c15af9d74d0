"""The ``python`` scorer: a function from the suite author's own file.

``path: "scorers.py:my_scorer"`` names a file (relative to the suite's folder)
and a function ``my_scorer(output, case, **params)``; every other parameter of
the scorer spec is passed through to it, rendered over the case like any
scorer parameter. It may return a ``ScoreResult``, a bool, or a number in
[0, 1] (which passes at 1). The file is imported into the openbench process,
like a conftest: it is trusted code, unlike model output.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import sys
import threading
from functools import lru_cache
from numbers import Real
from pathlib import Path
from typing import Any, Callable

from openbench.errors import OpenbenchError
from openbench.records import ScoreResult
from openbench.suite import ParamProblem

_LOAD_LOCK = threading.Lock()


@lru_cache(maxsize=64)
def _load(file: Path, function: str) -> Callable[..., Any]:
    if not file.is_file():
        raise OpenbenchError(f"custom scorer file not found: {file}")
    name = "openbench_custom_" + hashlib.sha256(str(file).encode()).hexdigest()[:12]
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # so dataclasses and pickling inside the file work
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    fn = getattr(module, function, None)
    if not callable(fn):
        from openbench.registry import did_you_mean

        known = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise OpenbenchError(
            f"{file} has no function '{function}'{did_you_mean(function, known)}; functions there: {', '.join(known) or 'none'}"
        )
    return fn


def load_function(path: str, suite_dir: str | Path | None = None) -> Callable[..., Any]:
    """The function named by ``"file.py:function"``; a relative file is looked up in ``suite_dir`` (else the cwd)."""
    file_part, sep, function = path.rpartition(":")
    if not sep or not file_part or not function:
        raise OpenbenchError(f"custom scorer path must look like 'file.py:function', got {path!r}")
    file = Path(file_part).expanduser()
    if not file.is_absolute():
        file = Path(suite_dir or Path.cwd()) / file
    with _LOAD_LOCK:
        return _load(file.resolve(), function)


def as_score(result: Any, origin: str) -> ScoreResult:
    if isinstance(result, ScoreResult):
        return result
    if isinstance(result, bool) or getattr(getattr(result, "dtype", None), "kind", None) == "b":  # numpy's bool is no Real
        return ScoreResult(1.0 if result else 0.0, bool(result), "")
    if isinstance(result, Real):
        value = float(result)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{origin} returned {value}, outside [0, 1]")
        return ScoreResult(value, value >= 1.0, "")
    kind = f"{type(result).__module__}.{type(result).__qualname__}".removeprefix("builtins.")
    raise TypeError(f"{origin} returned {kind}; expected a ScoreResult, a bool or a number in [0, 1]")


async def python(output: str, case: dict[str, Any], *, path: str, ctx: Any = None, **params: Any) -> ScoreResult:
    """Calls ``function(output, case, **params)`` from ``path`` ("file.py:function")."""
    fn = load_function(path, getattr(ctx, "suite_dir", None))
    if inspect.iscoroutinefunction(fn):
        result = await fn(output, case, **params)
    else:
        result = await asyncio.to_thread(fn, output, case, **params)  # user code may block
    return as_score(result, path)


def _validate(params: dict[str, Any], suite: Any) -> ParamProblem | None:
    """The file imports, the function exists, and it accepts ``(output, case, **the other parameters)``."""
    path = params.get("path")
    if not isinstance(path, str) or ":" not in path.lstrip(":"):
        return ParamProblem(f"scorer 'python' needs `path: \"file.py:function\"` (got {path!r})", "path")
    try:
        fn = load_function(path, suite.dir)
    except OpenbenchError as exc:
        return ParamProblem(str(exc), "path")
    except Exception as exc:  # noqa: BLE001 - the file itself fails to import
        return ParamProblem(f"cannot import {path.rpartition(':')[0]}: {type(exc).__name__}: {exc}", "path")
    others = {k: v for k, v in params.items() if k != "path"}
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # a builtin or C function: nothing to check
    try:
        signature.bind("", {}, **others)
    except TypeError as exc:
        call = ", ".join(["output", "case", *(f"{k}=..." for k in others)])
        return ParamProblem(f"{path}{signature} cannot be called as ({call}): {exc}", "path")
    return None


python.validate_params = _validate  # type: ignore[attr-defined]
