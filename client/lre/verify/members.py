"""The bundle as a ZIP: its members, read within bounds, and nothing else in
the file (bytes no seal covers could be read as something by another ZIP
reader)."""

from __future__ import annotations

import io
import struct
import zipfile

from lre.runtime import bundle_layout as layout
from lre.verify.checks import Bundle, check
from lre.verify.cms import SealProblem
from lre.verify.report import Report

# Far above a proof (~60 KB) and its chains; a bundle is read into memory,
# and what it inflates to is bounded before anything is inflated.
MAX_MEMBER_BYTES = 32 << 20
MAX_TOTAL_BYTES = 64 << 20
MAX_MEMBERS = 64


def open_bundle(report: Report, data: bytes) -> Bundle | None:
    """The bundle's members, read as the check "bundle" says; None when
    nothing of it can be read."""
    bundle = Bundle()
    with check(report, "bundle") as ok:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError) as exc:
            raise SealProblem(f"not a ZIP archive ({exc})") from None
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise SealProblem(f"{len(infos)} members: not an evidence bundle")
        _exactly_the_members(data, archive)
        if sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
            raise SealProblem(f"the members inflate to more than {MAX_TOTAL_BYTES} bytes")
        for info in infos:
            if info.filename in bundle.members:
                raise SealProblem(f"{info.filename} appears twice")
            if info.file_size > MAX_MEMBER_BYTES:
                raise SealProblem(f"{info.filename} is larger than {MAX_MEMBER_BYTES} bytes")
            try:
                bundle.members[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
                raise SealProblem(f"{info.filename} cannot be read ({exc})") from None
        missing = [m for m in (layout.MANIFEST, *layout.MEMBERS) if m not in bundle.members]
        if missing:
            raise SealProblem(f"missing: {', '.join(missing)}")
        ok(f"{len(bundle.members)} members, as {layout.FORMAT} lays out")
        return bundle
    # A ZIP with members missing is still checked as far as it goes.
    return bundle if bundle.members else None


def _exactly_the_members(data: bytes, archive: zipfile.ZipFile) -> None:
    """Nothing in the file but its members, end to end from its first byte,
    then their directory: no bytes before (a ZIP read from its end, as this
    verifier reads it, and one read from its start, as a streaming reader
    does, would be two archives), between or after them, no comment, no
    directory entry (a name ending in "/" may still carry data). No seal
    covers such bytes; docs/evidence.md says nothing rides along."""
    if archive.comment:
        raise SealProblem("the ZIP has a comment: bytes no seal covers")
    if data[-22:-18] != b"PK\x05\x06":  # the end record, with no comment, ends the file
        raise SealProblem("bytes after the ZIP's end record: no seal covers them")
    at = 0
    for info in sorted(archive.infolist(), key=lambda i: i.header_offset):
        if info.filename.endswith("/"):
            raise SealProblem(f"{info.filename} is a directory entry: not a member")
        if info.header_offset != at or data[at : at + 4] != b"PK\x03\x04":
            raise SealProblem("bytes before or between the ZIP's members: no seal covers them")
        name_length, extra_length = struct.unpack("<HH", data[at + 26 : at + 30])
        at += 30 + name_length + extra_length + info.compress_size
        if info.flag_bits & 0x08:  # sizes in a data descriptor after the data
            at += 16 if data[at : at + 4] == b"PK\x07\x08" else 12
    if at != archive.start_dir:
        raise SealProblem("bytes between the ZIP's members and its directory")
