"""Errors that name exactly what is wrong: the file, the host and the field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    host: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.host is None else f"{self.file}: host {self.host!r}"
        return f"{where}: {self.field}: {self.message}"


class InventoryError(ValueError):
    """Raised before any host is touched; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("invalid inventory:\n" + "\n".join(f"  - {p}" for p in problems))
