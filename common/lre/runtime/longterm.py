"""Until when a seal or a proof is proven to have existed: the chain of its
timestamps (the signature timestamp, then each archive or document
timestamp), and the provider's keys declared compromised.

Pure: the callers (``lre-verify``, ``verify-log``, ``verify-export``) check
each token's signature and path and pass what they found as ``Link``s.

A timestamp proves its time while its certificate (and its CAs') is valid
and unrevoked: the next timestamp, made before that ends, proves the first
one existed then, and so on to the last, which must be valid now. Then the
evidence is proven to have existed at the first timestamp's time.

A key declared compromised at an instant: what it signed at or after that
instant is refused. What it signed before stays proven only where a later
timestamp by another key, itself made before that instant, covers it (for a
seal key, its signature timestamp is such a timestamp); after the instant,
whoever holds the key can sign with any date.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Link:
    time: dt.datetime  # the token's genTime
    key: str  # SHA-256 (hex) of the TSA certificate
    name: str  # the TSA certificate's subject, for people
    expires: dt.datetime  # earliest notAfter of its certificate and CAs
    revoked: dt.datetime | None = None  # earliest revocation of one of them


@dataclass(frozen=True)
class Compromise:
    key: str  # SHA-256 (hex) of the certificate of the compromised key
    since: dt.datetime
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    proven: dt.datetime | None  # the instant the evidence is proven to have existed
    level: str  # "B-LT" (signature timestamp only) or "B-LTA"
    problem: str | None
    detail: str
    ends: dt.datetime  # when the last timestamp's certificates expire


def load_compromises(path: Path) -> dict[str, Compromise]:
    """``{"keys": [{"certificateSha256": hex, "compromisedAt": RFC 3339, "reason": text}]}``."""
    found = {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        for entry in data.get("keys", []):
            since = dt.datetime.fromisoformat(str(entry["compromisedAt"]).replace("Z", "+00:00"))
            if since.tzinfo is None:
                raise ValueError("compromisedAt must name its UTC offset")
            key = str(entry["certificateSha256"]).lower().replace(":", "")
            found[key] = Compromise(key, since, str(entry.get("reason", "")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a file of compromised keys ({exc!r})") from None
    return found


def _at(when: dt.datetime) -> str:
    return f"{when:%Y-%m-%dT%H:%M:%SZ}"


def assess(
    signer_key: str,
    links: list[Link],
    now: dt.datetime,
    compromised: dict[str, Compromise] | None = None,
) -> Verdict:
    """``links``: the signature timestamp first, then the archive (or
    document) timestamps in the order they were made."""
    level = "B-LTA" if len(links) > 1 else "B-LT"
    problem = compromise(signer_key, links, compromised or {}) or _expiry(links, now, level)
    first, last = links[0], links[-1]
    detail = (
        f"{level}: {len(links) - 1} archive timestamp(s)"
        f", the last by {last.name} at {_at(last.time)}, its certificates valid until"
        f" {_at(last.expires)}"
    )
    if problem:
        return Verdict(None, level, problem, detail, last.expires)
    return Verdict(
        first.time, level, None, f"proven to exist at {_at(first.time)} ({detail})", last.expires
    )


def compromise(
    signer_key: str, links: list[Link], compromised: dict[str, Compromise]
) -> str | None:
    """What a key declared compromised takes from a signature and its
    timestamps (``links``, as ``assess`` takes them); None when nothing."""
    sealed = compromised.get(signer_key)
    if sealed and links[0].time >= sealed.since:
        return (
            f"sealed at {_at(links[0].time)}, after the seal key was declared compromised"
            f" (since {_at(sealed.since)})"
        )
    for i, link in enumerate(links):
        c = compromised.get(link.key)
        if c is None:
            continue
        which = "the signature timestamp" if i == 0 else f"archive timestamp {i}"
        if link.time >= c.since:
            return (
                f"{which} ({link.name}, {_at(link.time)}) is dated after its key was declared"
                f" compromised (since {_at(c.since)})"
            )
        covered = any(
            later.key not in compromised and later.time < c.since for later in links[i + 1 :]
        )
        if not covered:
            return (
                f"{which} is by {link.name}, declared compromised since {_at(c.since)}, and no"
                " archive timestamp by another key made before then covers it"
            )
    if sealed:
        covered = links[0].key not in compromised and links[0].time < sealed.since
        if not covered:
            return "the seal key was declared compromised and no timestamp by another key covers it"
    return None


def _expiry(links: list[Link], now: dt.datetime, level: str) -> str | None:
    for i, link in enumerate(links):
        last = i == len(links) - 1
        until = now if last else links[i + 1].time
        which = "the signature timestamp" if i == 0 else f"archive timestamp {i}"
        if link.revoked is not None and link.revoked <= until:
            return f"{which}'s certificate ({link.name}) was revoked on {_at(link.revoked)}"
        if link.expires <= until:
            if last:
                return (
                    f"{which}'s certificate ({link.name}) expired on {_at(link.expires)} and no"
                    f" archive timestamp renewed it: the evidence is {level} and its time is no"
                    " longer proven"
                )
            return (
                f"{which}'s certificate ({link.name}) expired on {_at(link.expires)}, before the"
                f" next timestamp ({_at(links[i + 1].time)}) covered it"
            )
    return None
