"""How the TSA decides from its clock sources' measurements, and what the
journal keeps: the rule alone, on measurements made up here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lre.signer.clock import Measurement, NtpEnsemble, Source, parse_source
from lre.signer.clockjournal import ClockJournal


def _ensemble(quorum: int, journal: Path | None = None) -> NtpEnsemble:
    sources = [Source(f"ntp://s{i}", "127.0.0.1", 9) for i in range(3)]
    ensemble = NtpEnsemble.__new__(NtpEnsemble)  # the rule without its thread
    ensemble._sources, ensemble._max_offset_s, ensemble._quorum = sources, 0.5, quorum
    ensemble._journal = ClockJournal(journal)
    return ensemble


def _vouching(name: str, offset: float) -> Measurement:
    return Measurement(name, "vouches", offset, 0.002, abs(offset) + 0.001, 1)


def test_a_majority_vouching_is_trusted_and_names_its_worst_bound() -> None:
    status = _ensemble(2).decide(
        [
            _vouching("ntp://a", 0.010),
            _vouching("ntp://b", 0.020),
            Measurement("ntp://c", "too far", 30.0, 0.002, 30.001, 1),
        ]
    )
    assert status.trusted
    assert status.offset_s == pytest.approx(0.015)
    assert status.reason.startswith("2 of 3 clock sources show the local clock within 0.021 s")


def test_without_the_quorum_the_reason_names_each_failing_source() -> None:
    status = _ensemble(3).decide(
        [
            _vouching("ntp://a", 0.010),
            _vouching("ntp://b", 0.020),
            Measurement("ntp://c", "unreachable (NTPException)"),
        ]
    )
    assert not status.trusted
    assert status.reason == (
        "only 2 of 3 clock sources show the local clock within clock_max_offset_ms (500 ms), "
        "3 needed: ntp://c unreachable (NTPException)"
    )


def test_the_journal_keeps_every_source_and_the_decision(tmp_path: Path) -> None:
    journal = tmp_path / "clock.jsonl"
    ensemble = _ensemble(2, journal)
    found = [_vouching("ntp://a", 0.01), Measurement("ntp://b", "unsynchronised", 0.0, 0.01)]
    ensemble._journal.record(found, ensemble.decide(found))
    (line,) = journal.read_text(encoding="utf-8").splitlines()
    entry = json.loads(line)
    assert entry["trusted"] is False and "ntp://b unsynchronised" in entry["reason"]
    assert [s["result"] for s in entry["sources"]] == ["vouches", "unsynchronised"]
    assert entry["sources"][0]["offset_s"] == 0.01 and entry["pid"] > 0


@pytest.mark.parametrize("bad", ["udp://a", "ntp://", "host:123"])
def test_a_source_must_be_an_ntp_url(bad: str) -> None:
    with pytest.raises(ValueError, match="ntp://host"):
        parse_source(bad)
