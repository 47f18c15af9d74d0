"""The ``code`` scorer: run the model's code against the case's tests in the sandbox."""

from __future__ import annotations

import re
from typing import Any

from openbench.records import ScoreResult
from openbench.sandbox import run_python

ASSEMBLIES = ("humaneval", "script")
# A fenced block, closed or cut off by max_tokens; the language tag is optional.
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3"}


def _defines(code: str, name: str) -> bool:
    return bool(name) and re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def extract_code(output: str, entry_point: str = "") -> str:
    """The code in a model's answer: a Python fenced block (the one defining ``entry_point`` if any), else the raw text."""
    blocks = [body for tag, body in _FENCE.findall(output) if tag.lower() in _PYTHON_TAGS]
    if not blocks:
        return output.rstrip()  # a completion: its leading indentation matters
    return next((b for b in blocks if _defines(b, entry_point)), blocks[0]).rstrip()


def _compiles(source: str) -> bool:
    try:
        compile(source, "<prompt>", "exec")  # compiling runs nothing
    except (SyntaxError, ValueError):
        return False
    return True


def assemble_program(output: str, *, test: str, entry_point: str, prompt: str, assemble: str) -> str:
    """The program the sandbox runs: the model's code, then the tests."""
    code = extract_code(output, entry_point)
    if assemble == "script":
        return f"{code}\n{test}\n"
    if not entry_point:
        raise ValueError("assemble: humaneval needs `entry_point` (the function the tests check)")
    if not _defines(code, entry_point):
        program = prompt + code  # a completion of the prompt's function body
    elif _compiles(prompt):
        # A whole function: it follows the prompt, whose stub it replaces, so the prompt's
        # imports and helper functions (HumanEval/38, /50) are still defined.
        program = f"{prompt}\n{code}"
    else:
        program = code
    return f"{program}\n\n{test}\n\ncheck({entry_point})\n"


def code(
    output: str,
    case: dict[str, Any],
    *,
    test: str = "{{ test }}",
    entry_point: str = "{{ entry_point }}",
    prompt: str = "{{ prompt }}",
    timeout_s: float = 10,
    memory_mb: int = 512,
    assemble: str = "humaneval",
) -> ScoreResult:
    """Passes when the program (model code + tests) runs to its end in the sandbox within the limits.

    Running to the end is reported by the sandbox's harness, not inferred from the exit status, so
    an early ``sys.exit(0)`` fails. The explanation names the isolation used (``[isolation: …]``).

    ``assemble: humaneval`` runs prompt + completion (or the model's whole function),
    the ``test`` code and ``check(entry_point)``; ``assemble: script`` runs the code
    followed by ``test`` (set ``prompt: ""`` and ``entry_point: ""`` when the cases
    lack those fields).
    """
    if assemble not in ASSEMBLIES:
        raise ValueError(f"assemble must be one of {', '.join(ASSEMBLIES)}, got {assemble!r}")
    program = assemble_program(output, test=test, entry_point=entry_point, prompt=prompt, assemble=assemble)
    result = run_python(program, timeout_s=float(timeout_s), memory_mb=int(memory_mb))
    where = f"[isolation: {result.isolation}]"
    if result.ok:
        return ScoreResult(1.0, True, f"tests passed in {result.duration_s:.2f}s {where}")
    if result.timed_out:
        return ScoreResult(0.0, False, f"timed out after {float(timeout_s):g}s {where}")
    return ScoreResult(0.0, False, f"{result.failure()[:300]} {where}")


def _validate(params: dict[str, Any], suite: Any) -> str | None:
    if params.get("assemble", "humaneval") not in ASSEMBLIES:
        return f"scorer 'code': assemble must be one of {', '.join(ASSEMBLIES)}, got {params['assemble']!r}"
    return None


code.blocking = True  # type: ignore[attr-defined]  # runs a subprocess: off the event loop
code.sandboxed = True  # type: ignore[attr-defined]  # runs model-written code: the manifest names the isolation
code.validate_params = _validate  # type: ignore[attr-defined]
