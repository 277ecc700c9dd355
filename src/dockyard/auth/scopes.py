"""Token scopes as the Docker token spec writes them: `repository:NAME:pull,push`."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core.names import is_valid_name

PULL, PUSH, DELETE = "pull", "push", "delete"
ALL_ACTIONS = frozenset({PULL, PUSH, DELETE})


@dataclass(frozen=True, slots=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str  # a repository name, or "catalog"
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def claim(self) -> dict:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(text: str) -> Scope | None:
    """One scope, or None when it cannot be understood (ignored, as the spec suggests)."""
    resource_type, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not name:
        return None
    wanted = frozenset(a.strip() for a in actions.split(",") if a.strip())
    if resource_type == "repository":
        if not is_valid_name(name):
            return None
        if "*" in wanted:
            wanted = ALL_ACTIONS
        return Scope("repository", name, wanted & ALL_ACTIONS)
    if resource_type == "registry" and name == "catalog":
        return Scope("registry", "catalog", frozenset({"*"}) & wanted)
    return None


def parse_scopes(values: list[str]) -> list[Scope]:
    """Scopes from repeated `scope` parameters, each of which may hold several, space-separated."""
    found: dict[tuple[str, str], set[str]] = {}
    for value in values:
        for part in value.split():
            scope = parse_scope(part)
            if scope is not None:
                found.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return [Scope(kind, name, frozenset(actions)) for (kind, name), actions in found.items()]
