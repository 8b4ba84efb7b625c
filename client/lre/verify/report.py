"""What the verifier found: one named check per line, then one verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Outcome = Literal["pass", "fail", "not-anchored"]


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    anchored: bool = False

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, "pass" if ok else "fail", detail))
        return ok

    def unanchored(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, "not-anchored", detail))

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.outcome == "fail"]

    @property
    def valid(self) -> bool:
        """Every check passed, each chain to a trust anchor the verifier chose."""
        return bool(self.checks) and all(c.outcome == "pass" for c in self.checks)

    @property
    def verdict(self) -> str:
        if self.valid:
            return "VALID"
        if self.failed:
            return "INVALID"
        return (
            "INVALID (not anchored: give --trust with the provider's root CA and --provider"
            " with its certificates; nothing else failed)"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "format": "lre-verify-report/1",
            "verdict": "VALID" if self.valid else "INVALID",
            "anchored": self.anchored,
            "failed": self.failed,
            "checks": [asdict(c) for c in self.checks],
        }

    def as_text(self) -> str:
        marks = {"pass": "ok  ", "fail": "FAIL", "not-anchored": "????"}
        lines = [f"{marks[c.outcome]}  {c.name}: {c.detail}" for c in self.checks]
        return "\n".join([*lines, self.verdict])
