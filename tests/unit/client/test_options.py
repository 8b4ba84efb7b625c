"""lre-client's options: the ports `make run` was moved to, and no silent
plaintext when the TLS directory given is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from lre.client.__main__ import address_of, main


def test_addresses_follow_the_variables_that_moved_make_run() -> None:
    env = {"LRE_SERVER_GRPC_ADDRESS": "0.0.0.0:60051", "LRE_SIGNER_GRPC_ADDRESS": "[::]:60052"}
    assert address_of(env, "LRE_SERVER_GRPC_ADDRESS", "127.0.0.1:50051") == "127.0.0.1:60051"
    assert address_of(env, "LRE_SIGNER_GRPC_ADDRESS", "127.0.0.1:50052") == "127.0.0.1:60052"
    assert address_of({}, "LRE_SERVER_GRPC_ADDRESS", "127.0.0.1:50051") == "127.0.0.1:50051"
    moved = {"LRE_SERVER_GRPC_ADDRESS": "10.0.0.5:7000"}
    assert address_of(moved, "LRE_SERVER_GRPC_ADDRESS", "x:1") == "10.0.0.5:7000"


def test_a_tls_dir_without_certificates_is_an_error_not_plaintext(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "letter.pdf"
    document.write_bytes(b"%PDF-1.7\n")
    # An unused port: reaching it would fail otherwise, and later.
    with pytest.raises(SystemExit, match=r"--tls-dir .*vra/tls: no ca\.pem"):
        main(["walkthrough", str(document), "--server", "127.0.0.1:9", "--tls-dir", "vra/tls"])


def test_options_are_spelt_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["walkthrough", "x.pdf", "--tls", "var/tls"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --tls" in capsys.readouterr().err


def test_a_missing_document_is_refused_before_anything_is_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["walkthrough", str(tmp_path / "nowhere.pdf"), "--server", "127.0.0.1:9"])
    assert code == 2
    assert "nowhere.pdf: no such file" in capsys.readouterr().err
