"""The answers a reader should look at: items where the models disagree, or where one failed.

Records stream past once. An item's answers are held only until every model that ran its task has
answered it; then the item is kept (if it is worth showing and its task is under the cap) or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from openbench.records import ItemResult

#: Items shown per task, and in all (many tasks share it, down to MIN_PER_TASK each); the rest are left to items.csv.
MAX_PER_TASK = 40
MAX_SHOWN = 200
MIN_PER_TASK = 10
#: Characters of each output kept; longer outputs are cut with a note.
MAX_OUTPUT_CHARS = 2000

#: Why an item is shown, most telling first.
KINDS = {
    "flip": "changed outcome between the gated models",
    "disagree": "the models disagree",
    "error": "a request failed",
    "fail": "not passed",
}


@dataclass(frozen=True)
class Side:
    """One model's answer to one item."""

    model: str
    output: str | None
    cut: int  # characters left out of ``output``
    score: float | None
    passed: bool | None
    error: str | None
    explanations: list[tuple[str, str]]  # (scorer, explanation)

    @property
    def passes(self) -> bool | None:
        """Whether the item counts as passed: a failed request counts as a failure; None when it was not scored."""
        return False if self.error is not None else self.passed

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return "error"
        return "pass" if self.passed else "fail" if self.passed is not None else "not scored"


@dataclass(frozen=True)
class Answer:
    task: str
    case_id: str
    kind: str
    label: str
    sides: list[Side]
    anchor: str = ""  # the id of its card in the page


@dataclass(frozen=True)
class AnswersView:
    shown: list[Answer]
    found: dict[str, int]  # per task: items worth showing, shown or not
    tasks: list[str]
    per_task: int = MAX_PER_TASK  # the cap each task's items were held to
    flips: list[Answer] = field(default_factory=list)  # the shown flips, for the gate section
    flipped: int = 0  # every item whose pass/fail differs between the gated models
    flipped_to_pass: int = 0  # of those, the ones the candidate passes

    @property
    def total(self) -> int:
        return sum(self.found.values())

    @property
    def left_out(self) -> int:
        return self.total - len(self.shown)


def _side(r: ItemResult) -> Side:
    text = r.output
    cut = 0
    if text is not None and len(text) > MAX_OUTPUT_CHARS:
        cut, text = len(text) - MAX_OUTPUT_CHARS, text[:MAX_OUTPUT_CHARS]
    explanations = [(name, str(s.get("explanation") or "")) for name, s in (r.scores or {}).items() if s.get("explanation")]
    return Side(r.model, text, cut, r.score, r.passed, r.error, explanations)


class AnswerCollector:
    def __init__(self, tasks: list[str], expected: dict[str, list[str]], gate_pair: tuple[str, str] | None) -> None:
        self.tasks = tasks
        self.expected = expected  # per task, the models that answered it, in report order
        self.pair = gate_pair
        self._pending: dict[tuple[str, str], dict[str, Side]] = {}
        self._kept: dict[str, dict[str, list[Answer]]] = {}
        self._found: dict[str, int] = {}
        self._flipped = self._flipped_to_pass = 0

    def add(self, record: ItemResult) -> None:
        key = (record.task, record.case_id)
        sides = self._pending.setdefault(key, {})
        sides[record.model] = _side(record)
        if len(sides) >= len(self.expected.get(record.task, ())):
            self._settle(key, self._pending.pop(key))

    def finish(self) -> AnswersView:
        for key, sides in list(self._pending.items()):  # a partial run: some models never answered these
            self._settle(key, sides)
        self._pending.clear()
        order = list(dict.fromkeys([*self.tasks, *self._kept]))
        cap = max(MIN_PER_TASK, min(MAX_PER_TASK, MAX_SHOWN // max(1, len(self._kept))))
        shown = []
        for task in order:
            kept = self._kept.get(task, {})
            shown += [a for kind in KINDS for a in kept.get(kind, [])][:cap]
        shown = [replace(a, anchor=f"answer-{i}") for i, a in enumerate(shown, 1)]
        return AnswersView(
            shown=shown,
            found={t: self._found[t] for t in order if self._found.get(t)},
            tasks=[t for t in order if self._found.get(t)],
            per_task=cap,
            flips=[a for a in shown if a.kind == "flip"],
            flipped=self._flipped,
            flipped_to_pass=self._flipped_to_pass,
        )

    def _settle(self, key: tuple[str, str], by_model: dict[str, Side]) -> None:
        order = self.expected.get(key[0]) or list(by_model)
        sides = [by_model[m] for m in order if m in by_model] + [s for m, s in by_model.items() if m not in order]
        kind, label = self._classify(by_model, sides)
        if kind is None:
            return
        task = key[0]
        self._found[task] = self._found.get(task, 0) + 1
        bucket = self._kept.setdefault(task, {}).setdefault(kind, [])
        if len(bucket) < MAX_PER_TASK:
            bucket.append(Answer(task, key[1], kind, label, sides))

    def _classify(self, by_model: dict[str, Side], sides: list[Side]) -> tuple[str | None, str]:
        if self.pair and all(m in by_model for m in self.pair):
            base, cand = (by_model[m] for m in self.pair)
            if None not in (base.passes, cand.passes) and base.passes != cand.passes:
                self._flipped += 1
                self._flipped_to_pass += bool(cand.passes)
                return "flip", f"{self.pair[0]} {base.outcome} → {self.pair[1]} {cand.outcome}"
        failed = [s.model for s in sides if s.error is not None]
        if failed:
            return "error", f"failed request: {', '.join(failed)}"
        outcomes = {(s.passed, s.score) for s in sides}
        if len(outcomes) > 1:
            return "disagree", " · ".join(f"{s.model} {s.outcome}" for s in sides)
        if len(sides) == 1 and sides[0].passed is False:
            return "fail", f"{sides[0].model} fail"
        return None, ""
