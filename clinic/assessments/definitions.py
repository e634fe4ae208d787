"""Instrument definitions are data (``instruments/*.json``); this module reads and applies them.

A definition lists its items (key, text, type, allowed values, points), modifiers (answers that
are not scored but change scoring or bands, e.g. AUDIT-C's ``sex``), the scoring method, the
severity bands and the flags. Adding an instrument means adding a file, not code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

SCORING_METHODS = frozenset({"sum", "count_true", "none"})
ITEM_TYPES = frozenset({"integer", "boolean", "choice"})
_OPS = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


class AnswerError(ValueError):
    """Answers that do not fit the instrument; ``errors`` maps each item key to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid answers")
        self.errors = errors


@dataclass(frozen=True)
class Item:
    key: str
    text: str
    type: str
    allowed: tuple[Any, ...] | None = None
    #: Points per answer; booleans default to yes=1, no=0, integers score their value.
    points: dict[str, int] | None = None
    required: bool = True
    #: Allowed values that depend on another answer, e.g. ASAM levels by edition.
    allowed_by: dict[str, Any] | None = None
    #: Wording that depends on another answer, e.g. ASAM dimension names by edition:
    #: ``{"modifier": "edition", "values": {"3": "...", "4": "..."}}``.
    text_by: dict[str, Any] | None = None
    #: Each answer's words, by the answer as JSON text without quotes (``"0"``, ``"true"``, ``"3.5"``).
    labels: dict[str, str] | None = None
    #: Answer words that depend on another answer (ASAM levels of care named by edition).
    labels_by: dict[str, Any] | None = None

    def option_labels(self, answers: dict[str, Any]) -> dict[str, str]:
        """Each answer's words for these answers (the chosen edition's, where they depend on one)."""
        if self.labels_by is not None:
            chosen = answers.get(self.labels_by["modifier"])
            return dict(self.labels_by["values"].get(str(chosen), {}))
        return dict(self.labels or {})

    def allowed_values(self, answers: dict[str, Any]) -> tuple[Any, ...] | None:
        if self.type == "boolean":
            return (True, False)
        if self.allowed_by is not None:
            chosen = answers.get(self.allowed_by["modifier"])
            values = self.allowed_by["values"]
            # An answer the modifier does not allow is reported on the modifier itself.
            return tuple(values[str(chosen)]) if str(chosen) in values else None
        return self.allowed

    def text_for(self, answers: dict[str, Any]) -> str:
        """The item's wording for these answers (the chosen edition's, where it depends on one)."""
        if self.text_by is not None:
            chosen = answers.get(self.text_by["modifier"])
            return str(self.text_by["values"].get(str(chosen), self.text))
        return self.text

    def points_for(self, value: Any) -> int:
        if self.points is not None:
            return int(self.points[json.dumps(value)])
        if self.type == "boolean":
            return 1 if value else 0
        return int(value)


@dataclass(frozen=True)
class Band:
    label: str
    min: int
    max: int | None

    def contains(self, total: int) -> bool:
        return total >= self.min and (self.max is None or total <= self.max)


@dataclass(frozen=True)
class FlagRule:
    flag: str
    items: tuple[str, ...]
    op: str
    value: Any
    alert: bool = False
    alert_title: str | None = None


@dataclass(frozen=True)
class Score:
    total: int | None
    severity: str | None
    flags: list[str]
    #: Flags whose definition asks for an immediate alert to the client's clinician.
    alerts: list[FlagRule] = field(default_factory=list)


@dataclass(frozen=True)
class Instrument:
    code: str
    name: str
    version: str
    source: str
    items: tuple[Item, ...]
    modifiers: tuple[Item, ...]
    scoring: dict[str, Any]
    bands: dict[str, tuple[Band, ...]]
    bands_by: str | None
    flags: tuple[FlagRule, ...]
    total_range: tuple[int, int] | None
    raw: dict[str, Any]

    def validate(self, answers: Any) -> dict[str, Any]:
        """Return the answers if they fit, else raise AnswerError naming every bad item."""
        if not isinstance(answers, dict):
            raise AnswerError({"answers": ["Must be an object of item keys to answers."]})
        errors: dict[str, list[str]] = {}
        known = {item.key: item for item in (*self.items, *self.modifiers)}
        for key in answers:
            if key not in known:
                errors[f"answers.{key}"] = [f"Unknown item for {self.code}."]
        # Modifiers first: items may depend on them (allowed_by).
        for item in (*self.modifiers, *self.items):
            if item.key not in answers:
                if item.required:
                    errors[f"answers.{item.key}"] = ["Missing answer."]
                continue
            problem = _value_problem(item, answers[item.key], answers)
            if problem:
                errors[f"answers.{item.key}"] = [problem]
        if errors:
            raise AnswerError(errors)
        return dict(answers)

    def score(self, answers: dict[str, Any]) -> Score:
        """Total, severity label and flags of valid answers, as the instrument defines them."""
        method = self.scoring["method"]
        total: int | None
        if method == "none":
            total = None
        else:
            excluded = self._excluded_items(answers)
            scored = [item for item in self.items if item.key not in excluded]
            if method == "count_true":
                total = sum(1 for item in scored if answers[item.key] is True)
            else:
                total = sum(item.points_for(answers[item.key]) for item in scored)
        severity = self._severity(total, answers)
        flags: list[str] = []
        alerts: list[FlagRule] = []
        for rule in self.flags:
            for key in rule.items:
                if _OPS[rule.op](answers[key], rule.value):
                    flags.append(rule.flag.format(item=key))
                    if rule.alert:
                        alerts.append(rule)
        return Score(total=total, severity=severity, flags=flags, alerts=alerts)

    def preview(self, answers: dict[str, Any]) -> tuple[Score, int, int]:
        """The score of the answers given so far: (score, answered, asked), answers that do not fit left out.

        Complete answers are scored as :meth:`score` scores them; until then the total is that of the
        answers given, with no severity, and the flags those answers already raise.
        """
        asked = [item for item in (*self.modifiers, *self.items) if item.required]
        fitting = {
            item.key: answers[item.key]
            for item in (*self.modifiers, *self.items)
            if item.key in answers and _value_problem(item, answers[item.key], answers) is None
        }
        answered = sum(1 for item in asked if item.key in fitting)
        if answered == len(asked):
            return self.score(fitting), answered, len(asked)
        method = self.scoring["method"]
        excluded = self._excluded_items(fitting)
        scored = [item for item in self.items if item.key not in excluded and item.key in fitting]
        total: int | None = None
        if method == "count_true":
            total = sum(1 for item in scored if fitting[item.key] is True)
        elif method == "sum":
            total = sum(item.points_for(fitting[item.key]) for item in scored)
        flags: list[str] = []
        alerts: list[FlagRule] = []
        for rule in self.flags:
            for key in rule.items:
                if key in fitting and _OPS[rule.op](fitting[key], rule.value):
                    flags.append(rule.flag.format(item=key))
                    if rule.alert:
                        alerts.append(rule)
        return Score(total=total, severity=None, flags=flags, alerts=alerts), answered, len(asked)

    def item_labels(self, answers: dict[str, Any]) -> dict[str, str]:
        """The wording of each item that depends on another answer, for these answers (else {}).

        ASAM: the six dimensions as the assessment's own edition names them.
        """
        return {item.key: item.text_for(answers) for item in self.items if item.text_by is not None}

    def _excluded_items(self, answers: dict[str, Any]) -> set[str]:
        rule = self.scoring.get("exclude_when")
        if rule and answers.get(rule["modifier"]) == rule["equals"]:
            return set(rule["items"])
        return set()

    def _severity(self, total: int | None, answers: dict[str, Any]) -> str | None:
        if total is None:
            return None
        bands = self.bands.get(str(answers.get(self.bands_by)) if self.bands_by else "", ())
        for band in bands:
            if band.contains(total):
                return band.label
        return None

    def describe(self) -> dict[str, Any]:
        """The public form served by ``GET /instruments``."""

        def item_doc(item: Item, *, modifier: bool) -> dict[str, Any]:
            doc: dict[str, Any] = {
                "key": item.key,
                "text": item.text,
                "type": item.type,
                "modifier": modifier,
                "required": item.required,
            }
            if item.allowed_by is not None:
                doc["allowed"] = None
                doc["allowed_by"] = item.allowed_by
            else:
                doc["allowed"] = list(item.allowed_values({}) or ())
            if item.text_by is not None:
                doc["text_by"] = item.text_by
            if item.points is not None:
                doc["points"] = item.points
            if item.labels is not None:
                doc["labels"] = item.labels
            if item.labels_by is not None:
                doc["labels_by"] = item.labels_by
            return doc

        return {
            "code": self.code,
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "items": [item_doc(i, modifier=False) for i in self.items]
            + [item_doc(m, modifier=True) for m in self.modifiers],
            "scoring": self.scoring["method"],
            "total_range": list(self.total_range) if self.total_range else None,
            "bands_by": self.bands_by,
            "bands": {k: [{"label": b.label, "min": b.min, "max": b.max} for b in v] for k, v in self.bands.items()},
            "flags": [{"flag": r.flag, "items": list(r.items), "op": r.op, "value": r.value} for r in self.flags],
        }


def _value_problem(item: Item, value: Any, answers: dict[str, Any]) -> str | None:
    allowed = item.allowed_values(answers)
    if item.type == "boolean":
        return None if isinstance(value, bool) else "Must be true or false."
    if item.type == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return "Must be a whole number."
    if item.type == "choice" and not isinstance(value, str):
        return "Must be a string."
    if allowed is not None and value not in allowed:
        return "Must be one of: " + ", ".join(str(v) for v in allowed) + "."
    return None


def _parse(raw: dict[str, Any]) -> Instrument:
    def item(doc: dict[str, Any]) -> Item:
        if doc["type"] not in ITEM_TYPES:
            raise ValueError(f"{raw['code']}: unknown item type {doc['type']}")
        return Item(
            key=doc["key"],
            text=doc["text"],
            type=doc["type"],
            allowed=tuple(doc["allowed"]) if doc.get("allowed") is not None else None,
            points=doc.get("points"),
            required=doc.get("required", True),
            allowed_by=doc.get("allowed_by"),
            text_by=doc.get("text_by"),
            labels=doc.get("labels"),
            labels_by=doc.get("labels_by"),
        )

    if raw["scoring"]["method"] not in SCORING_METHODS:
        raise ValueError(f"{raw['code']}: unknown scoring method")
    raw_bands: Any = raw.get("bands") or []
    bands_by = raw.get("bands_by")
    band_sets: dict[str, list[dict[str, Any]]] = raw_bands if bands_by else {"": raw_bands}
    return Instrument(
        code=raw["code"],
        name=raw["name"],
        version=str(raw["version"]),
        source=raw.get("source", ""),
        items=tuple(item(d) for d in raw["items"]),
        modifiers=tuple(item(d) for d in raw.get("modifiers", [])),
        scoring=raw["scoring"],
        bands={key: tuple(Band(b["label"], b["min"], b["max"]) for b in bands) for key, bands in band_sets.items()},
        bands_by=bands_by,
        flags=tuple(
            FlagRule(f["flag"], tuple(f["items"]), f["op"], f["value"], f.get("alert", False), f.get("alert_title"))
            for f in raw.get("flags", [])
        ),
        total_range=(raw["total_range"][0], raw["total_range"][1]) if raw.get("total_range") else None,
        raw=raw,
    )


@cache
def instruments() -> dict[str, Instrument]:
    """Every instrument shipped in ``clinic/assessments/instruments``, by code."""
    folder = resources.files("clinic.assessments").joinpath("instruments")
    loaded = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            instrument = _parse(json.loads(entry.read_text(encoding="utf-8")))
            loaded[instrument.code] = instrument
    return loaded


def get_instrument(code: str) -> Instrument | None:
    return instruments().get(code)
