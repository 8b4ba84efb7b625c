"""What each proof is called and what its event means in law, in French and
English, and the reasons in words: read from ``templates/texts.toml``, the
file a provider translates or rewords (the layout is ``templates/proof.typ``).
The ETSI EN 319 522 event names the evidence carries are the keys; a file
that misses an event stops the server at start, not at a proof.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from lre.server.domain.letters import EvidenceEvent


@dataclass(frozen=True)
class Bilingual:
    fr: str
    en: str


@dataclass(frozen=True)
class EventText:
    title: Bilingual
    meaning: Bilingual


def _load() -> tuple[dict[EvidenceEvent, EventText], dict[str, Bilingual]]:
    path = resources.files("lre.server.proofs").joinpath("templates/texts.toml")
    texts = tomllib.loads(path.read_text("utf-8"))
    events = texts["events"]
    missing = [e.value for e in EvidenceEvent if e.value not in events]
    if missing:
        raise RuntimeError(f"templates/texts.toml has no text for {missing}")
    return (
        {
            e: EventText(
                Bilingual(events[e.value]["title_fr"], events[e.value]["title_en"]),
                Bilingual(events[e.value]["meaning_fr"], events[e.value]["meaning_en"]),
            )
            for e in EvidenceEvent
        },
        {code: Bilingual(w["fr"], w["en"]) for code, w in texts.get("reasons", {}).items()},
    )


TEXTS, REASONS = _load()
