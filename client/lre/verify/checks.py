"""What every check of a bundle shares: the members as read, one check's
scope (what it raises becomes its failure, in words), and the provider's
checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from lre.verify.cms import SealProblem
from lre.verify.provider import Provider
from lre.verify.report import Report


class Missing(Exception):
    pass


@dataclass
class Bundle:
    members: dict[str, bytes] = field(default_factory=dict)

    def __getitem__(self, name: str) -> bytes:
        if name not in self.members:
            raise Missing(f"{name} is missing from the bundle")
        return self.members[name]


@contextmanager
def check(report: Report, name: str) -> Iterator[Callable[[str], None]]:
    """Runs one check: what it raises becomes its failure, in words."""
    said: list[str] = []
    try:
        yield said.append
    except (SealProblem, Missing) as exc:
        report.add(name, False, str(exc))
    except Exception as exc:  # malformed input, whatever it raises
        report.add(name, False, f"malformed ({type(exc).__name__}: {exc})"[:300])
    else:
        report.add(name, True, "; ".join(said))


def provider_check(
    report: Report, name: str, provider: Provider | None, verdict: Callable[[Provider], str]
) -> None:
    """Whether the provider made it: a failure names who did instead."""
    if provider is None:
        report.unanchored(
            name, "no --provider: whose seal this is was not checked against the provider's"
        )
        return
    with check(report, name) as ok:
        ok(verdict(provider))
