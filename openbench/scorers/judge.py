"""LLM-as-judge: any model of the suite grades an output against a rubric, or against a reference.

Verdicts are parsed deterministically (the last ``SCORE: n`` or ``VERDICT: A|B|TIE``
line); an unparseable verdict makes the item an error, never a 0. The judge's
tokens, cost and latency are recorded in the record's ``judge`` field, apart
from the candidate's.
"""

from __future__ import annotations

import re
from typing import Any

from openbench.records import ChatRequest, Message, Sampling, ScoreResult

DEFAULT_RUBRIC = "Is the answer correct, complete and helpful for the question?"

_SCORE = re.compile(r"SCORE\s*[:=]\s*(\d+)", re.IGNORECASE)
_VERDICT = re.compile(r"VERDICT\s*[:=]\s*(A|B|TIE)\b", re.IGNORECASE)


class JudgeVerdictError(ValueError):
    """The judge answered, but not in the required form."""


def _ask(system: str, user: str, max_tokens: int) -> ChatRequest:
    return ChatRequest((Message("system", system), Message("user", user)), Sampling(temperature=0.0, max_tokens=max_tokens, seed=0))


def parse_score(text: str, scale: int) -> int:
    found = _SCORE.findall(text)
    if not found:
        raise JudgeVerdictError(f"no 'SCORE: n' in the judge's answer: {text[:120]!r}")
    value = int(found[-1])
    if not 1 <= value <= scale:
        raise JudgeVerdictError(f"judge score {value} is outside 1..{scale}")
    return value


def parse_verdict(text: str) -> str:
    found = _VERDICT.findall(text)
    if not found:
        raise JudgeVerdictError(f"no 'VERDICT: A|B|TIE' in the judge's answer: {text[:120]!r}")
    return found[-1].upper()


async def judge(
    output: str,
    case: dict[str, Any],
    *,
    model: str,
    rubric: str = DEFAULT_RUBRIC,
    scale: int = 5,
    threshold: float = 0.75,
    reference: str | None = None,
    mode: str = "score",
    max_tokens: int = 256,
    ctx: Any,
) -> ScoreResult:
    """Grade ``output`` with the suite model ``model``.

    ``mode: score``: a 1..scale grade, mapped to (grade − 1)/(scale − 1); passes at ``threshold``.
    ``mode: pairwise``: compared with ``reference`` twice, in both orders to cancel position bias;
    a win counts 1, a tie 0.5; passes when the candidate is at least as good on average.
    """
    question = ctx.prompt
    if mode == "pairwise":
        if not reference:
            raise ValueError("pairwise judging needs `reference` (e.g. reference: '{{ answer }}')")
        system = (
            "You compare two responses to the same question. Criteria: " + rubric + "\n"
            "Think briefly, then end with one line: VERDICT: A, VERDICT: B or VERDICT: TIE."
        )
        points = 0.0
        verdicts = []
        for first, second, candidate_is in ((output, reference, "A"), (reference, output, "B")):
            user = f"Question:\n{question}\n\nResponse A:\n{first}\n\nResponse B:\n{second}"
            answer = await ctx.complete(model, _ask(system, user, max_tokens))
            verdict = parse_verdict(answer.text)
            verdicts.append(verdict)
            points += 0.5 if verdict == "TIE" else float(verdict == candidate_is)
        value = points / 2
        return ScoreResult(value, value >= 0.5, f"pairwise vs reference: {verdicts[0]} (candidate A), {verdicts[1]} (candidate B)")
    if mode != "score":
        raise ValueError(f"unknown judge mode '{mode}' (score or pairwise)")
    system = (
        f"You grade a response on a scale of 1 (worst) to {scale} (best). Criteria: {rubric}\n"
        f"Think briefly, then end with one line: SCORE: <1-{scale}>."
    )
    user = f"Question:\n{question}\n\nResponse:\n{output}"
    if reference:
        user += f"\n\nReference answer:\n{reference}"
    answer = await ctx.complete(model, _ask(system, user, max_tokens))
    grade = parse_score(answer.text, scale)
    value = (grade - 1) / (scale - 1) if scale > 1 else 1.0
    return ScoreResult(value, value >= threshold, f"judge {model}: {grade}/{scale}")


def _validate(params: dict[str, Any], suite: Any) -> str | None:
    ids = [m.id for m in suite.spec.models]
    name = params.get("model")
    if name not in ids:
        from openbench.registry import did_you_mean

        return f"judge model '{name}' is not a model of this suite{did_you_mean(str(name), ids)}; models: {', '.join(ids)}"
    if params.get("mode", "score") not in ("score", "pairwise"):
        return f"judge mode must be score or pairwise, got {params.get('mode')!r}"
    return None


judge.validate_params = _validate  # type: ignore[attr-defined]
