"""A finding: a named, graded statement about a model or a result, the numbers behind it, and what to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One finding.

    Attributes:
        code: Stable identifier, e.g. ``accuracy-paradox``.
        severity: ``error`` (do not trust the result / cannot train), ``warning`` or ``info``.
        message: What is wrong, in plain words, with the numbers.
        fix: What to do (a one-line fix or a recommendation).
        numbers: The values behind the finding.
    """

    code: str
    severity: Severity
    message: str
    fix: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.severity}] {self.code}: {self.message}\n    fix: {self.fix}"


def by_severity(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then information (stable)."""
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity])
