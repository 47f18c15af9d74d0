"""Reference-overlap scorers: rouge (ROUGE-L F1), bleu and chrf (sentence-level, via sacrebleu).

Each value is in [0, 1] (BLEU and chrF divided by 100); ``threshold`` only sets
``passed``. With a list of references, ROUGE-L takes the best one and BLEU and
chrF use them all as sacrebleu does. Note that the mean of sentence BLEU over
a task is not corpus BLEU.
"""

from __future__ import annotations

import re
from typing import Any

from openbench.errors import MissingDependency
from openbench.records import ScoreResult

_WORD = re.compile(r"[^\W_]+")


def _references(expected: str | list[str]) -> list[str]:
    return [str(e) for e in expected] if isinstance(expected, list) else [str(expected)]


def _verdict(value: float, threshold: float, metric: str) -> ScoreResult:
    value = min(1.0, max(0.0, value))  # sacrebleu's 100.0 / 100 can land a hair above 1
    passed = value >= float(threshold)
    return ScoreResult(value, passed, f"{metric} {value:.3f} {'≥' if passed else '<'} {float(threshold):g}")


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits (rouge-score's tokens, but keeping non-ASCII letters)."""
    return _WORD.findall(text.casefold())


def lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(output: str, reference: str) -> float:
    """ROUGE-L F1 over words."""
    got, want = words(output), words(reference)
    common = lcs_length(got, want)
    if not common:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def rouge(output: str, case: dict[str, Any], *, expected: str | list[str] = "{{ answer }}", threshold: float = 0.5) -> ScoreResult:
    """ROUGE-L F1 between the output and the expected text (the best of a list)."""
    value = max(rouge_l(output, ref) for ref in _references(expected))
    return _verdict(value, threshold, "ROUGE-L F1")


def _sacrebleu() -> Any:
    try:
        import sacrebleu
    except ImportError:
        raise MissingDependency("sacrebleu", "The bleu and chrf scorers") from None
    return sacrebleu


def bleu(
    output: str,
    case: dict[str, Any],
    *,
    expected: str | list[str] = "{{ answer }}",
    threshold: float = 0.3,
    tokenize: str = "13a",
) -> ScoreResult:
    """Sentence BLEU (sacrebleu, exponential smoothing) / 100. ``tokenize``: 13a, intl, zh, ja-mecab, char, none…"""
    result = _sacrebleu().sentence_bleu(output, _references(expected), tokenize=tokenize)
    return _verdict(result.score / 100, threshold, "BLEU")


def chrf(
    output: str,
    case: dict[str, Any],
    *,
    expected: str | list[str] = "{{ answer }}",
    threshold: float = 0.5,
    word_order: int = 0,
) -> ScoreResult:
    """Sentence chrF (sacrebleu) / 100; ``word_order: 2`` gives chrF++."""
    result = _sacrebleu().sentence_chrf(output, _references(expected), word_order=int(word_order))
    return _verdict(result.score / 100, threshold, "chrF++" if int(word_order) else "chrF")
