"""The plan tree (problems -> goals -> objectives -> interventions): node ids and readable diffs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from clinic.core.errors import abort_problem

#: Child list and label of each level of the tree.
LEVELS = (("problems", "problem"), ("goals", "goal"), ("objectives", "objective"), ("interventions", "intervention"))
_CHILDREN = {"problem": "goals", "goal": "objectives", "objective": "interventions", "intervention": None}
_PREFIX = {"problem": "p", "goal": "g", "objective": "o", "intervention": "i"}
#: Fields of the plan itself that each revision keeps beside the tree, in the order a diff lists them.
PLAN_FIELDS = ("status", "episode_id", "review_interval_days")
#: Level, node id and path of a change to the plan itself rather than to an entry of its tree.
PLAN_LEVEL = "plan"


def _new_id(level: str) -> str:
    return _PREFIX[level] + secrets.token_hex(4)


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value


def assign_ids(problems: list[dict[str, Any]], *, existing: set[str]) -> list[dict[str, Any]]:
    """Give new nodes ids; a node sent with an id keeps it, which must be one of this plan's."""
    seen: set[str] = set()

    def walk(nodes: list[dict[str, Any]], level: str, path: str) -> list[dict[str, Any]]:
        result = []
        child_key = _CHILDREN[level]
        for index, node in enumerate(nodes):
            here = f"{path}.{index}"
            node_id = node.get("id")
            if node_id is not None:
                if node_id not in existing:
                    abort_problem(
                        422,
                        "A node id that is not part of this plan.",
                        errors={f"{here}.id": ["Not an id of this plan; leave it out for a new entry."]},
                    )
                if node_id in seen:
                    abort_problem(422, "The same node id appears twice.", errors={f"{here}.id": ["Duplicate id."]})
            else:
                node_id = _new_id(level)
            seen.add(node_id)
            clean = {k: _plain(v) for k, v in node.items() if k not in {"id", child_key}}
            clean["id"] = node_id
            if child_key is not None:
                child_level = {"goals": "goal", "objectives": "objective", "interventions": "intervention"}[child_key]
                clean[child_key] = walk(node.get(child_key) or [], child_level, f"{here}.{child_key}")
            result.append(clean)
        return result

    return walk(problems, "problem", "problems")


def node_ids(problems: list[dict[str, Any]]) -> set[str]:
    return {node["id"] for _path, _level, node in walk_tree(problems)}


def walk_tree(problems: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every node with a readable path ("Problem 'X' > Goal 'Y'") and its level."""

    def walk(nodes: list[dict[str, Any]], level: str, trail: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for node in nodes:
            label = f"{level.capitalize()} '{_short(node.get('description', ''))}'"
            path = f"{trail} > {label}" if trail else label
            yield path, level, node
            child_key = _CHILDREN[level]
            if child_key:
                child_level = {"goals": "goal", "objectives": "objective", "interventions": "intervention"}[child_key]
                yield from walk(node.get(child_key) or [], child_level, path)

    yield from walk(problems, "problem", "")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def interventions(problems: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for _path, level, node in walk_tree(problems):
        if level == "intervention":
            yield node


@dataclass(frozen=True)
class Change:
    change: str  # added | removed | changed
    level: str
    node_id: str
    path: str
    field: str | None
    before: Any
    after: Any

    @property
    def description(self) -> str:
        if self.change == "added":
            return f"Added {self.path}"
        if self.change == "removed":
            return f"Removed {self.path}"
        return f"Changed {self.field} of {self.path}: {self.before!r} -> {self.after!r}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "level": self.level,
            "node_id": self.node_id,
            "path": self.path,
            "field": self.field,
            "before": self.before,
            "after": self.after,
            "description": self.description,
        }


def diff(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Change]:
    """What changed between two trees, matched by node id, in the order a reader expects."""
    old = {node["id"]: (path, level, node) for path, level, node in walk_tree(before)}
    new = {node["id"]: (path, level, node) for path, level, node in walk_tree(after)}
    changes: list[Change] = []
    for node_id, (path, level, node) in old.items():
        if node_id not in new:
            changes.append(Change("removed", level, node_id, path, None, _fields(node, level), None))
    for node_id, (path, level, node) in new.items():
        if node_id not in old:
            changes.append(Change("added", level, node_id, path, None, None, _fields(node, level)))
            continue
        previous = _fields(old[node_id][2], level)
        current = _fields(node, level)
        for key in sorted(set(previous) | set(current)):
            if previous.get(key) != current.get(key):
                changes.append(Change("changed", level, node_id, path, key, previous.get(key), current.get(key)))
    return changes


def plan_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """What changed in the plan's own fields (``PLAN_FIELDS``) between two revisions."""
    changes = []
    for key in PLAN_FIELDS:
        old, new = _plain(before.get(key)), _plain(after.get(key))
        if old != new:
            changes.append(Change("changed", PLAN_LEVEL, PLAN_LEVEL, "Plan", key, old, new))
    return changes


def _fields(node: dict[str, Any], level: str) -> dict[str, Any]:
    child_key = _CHILDREN[level]
    return {k: v for k, v in node.items() if k not in {"id", child_key}}
