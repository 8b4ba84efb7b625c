"""Certificate files read again when they change, never half-renewed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lre.dev.tls import create_dev_tls
from lre.runtime.certfiles import EXPIRY, CertificateFiles


def test_a_renewal_is_taken_whole_and_a_half_written_one_waits(tmp_path: Path) -> None:
    first, second = create_dev_tls(tmp_path / "a"), create_dev_tls(tmp_path / "b")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copyfile(first.service_cert, cert)
    shutil.copyfile(first.service_key, key)
    files = CertificateFiles("unit", cert, key, first.ca)
    assert files.current.cert == first.service_cert.read_bytes()
    assert files.refresh(force=True).generation == 0  # nothing changed

    # The certificate replaced, its key not yet: the previous pair stays.
    shutil.copyfile(second.service_cert, tmp_path / "new")
    os.replace(tmp_path / "new", cert)
    assert files.refresh(force=True).cert == first.service_cert.read_bytes()
    # Checked at most once a second unless forced.
    shutil.copyfile(second.service_key, tmp_path / "new")
    os.replace(tmp_path / "new", key)
    assert files.refresh().generation == 0
    renewed = files.refresh(force=True)
    assert renewed.generation == 1
    assert renewed.cert == second.service_cert.read_bytes()
    assert renewed.key == second.service_key.read_bytes()
    assert EXPIRY.labels("unit")._value.get() == pytest.approx(renewed.not_after)


def test_a_certificate_that_is_not_the_keys_is_refused_at_start(tmp_path: Path) -> None:
    first, second = create_dev_tls(tmp_path / "a"), create_dev_tls(tmp_path / "b")
    with pytest.raises(ValueError, match="not the certificate of"):
        CertificateFiles("unit", first.service_cert, second.service_key)
