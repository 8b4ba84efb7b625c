"""`lre-signer check-token` on real SoftHSM tokens: a good one, one missing a
key, and a wrong PIN; one line per check, exit 1 on any failure, no PIN shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lre.signer.devsetup import DevPaths
from tests.support.signer import check_token

CHECKS = [
    "module",
    "token",
    "mechanism ECDSA",
    "mechanism AES_GCM",
    "mechanism EC_KEY_PAIR_GEN",
    "mechanism AES_KEY_GEN",
    "login",
    "CA chain",
    "key lre-seal",
    "certificate lre-seal",
    "key lre-tsa",
    "certificate lre-tsa",
    "key lre-wrap",
]


def test_a_good_token_passes_every_check(dev_var: DevPaths, token_copy: Path) -> None:
    code, lines, output = check_token(dev_var, token_copy)
    assert code == 0, output
    assert list(lines) == CHECKS, output
    assert all(line.startswith("OK ") for line in lines.values()), output
    assert "token ready for the signer" in output
    assert dev_var.pin_file.read_text().strip() not in output


def _delete_object(softhsm_conf: Path, paths: DevPaths, label: str) -> None:
    """Deletes the key labelled ``label`` from the copy, in a process of its own
    (SoftHSM reads its configuration once per process)."""
    script = (
        "import sys, pkcs11\n"
        "lib = pkcs11.lib(sys.argv[1])\n"
        "with lib.get_token(token_label='lre').open(rw=True, user_pin=sys.argv[2]) as s:\n"
        "    found = list(s.get_objects({pkcs11.Attribute.LABEL: sys.argv[3],\n"
        "        pkcs11.Attribute.CLASS: pkcs11.ObjectClass.SECRET_KEY}))\n"
        "    assert len(found) == 1\n"
        "    found[0].destroy()\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "/usr/lib/softhsm/libsofthsm2.so",
            paths.pin_file.read_text().strip(),
            label,
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm_conf)},
        check=True,
    )


def test_a_token_missing_the_wrap_key_names_it(dev_var: DevPaths, token_copy: Path) -> None:
    _delete_object(token_copy, dev_var, "lre-wrap")
    code, lines, output = check_token(dev_var, token_copy)
    assert code == 1, output
    assert lines["key lre-wrap"] == "FAIL 0 objects of class SECRET_KEY labelled 'lre-wrap'"
    # Everything else is still fine, and said so.
    assert [what for what, line in lines.items() if line.startswith("FAIL")] == ["key lre-wrap"]
    assert "token NOT ready for the signer" in output


def test_a_missing_seal_key_is_named_too(dev_var: DevPaths, token_copy: Path) -> None:
    code, lines, output = check_token(dev_var, token_copy, seal_key_label="lre-seal-2027")
    assert code == 1, output
    assert lines["key lre-seal-2027"].startswith("FAIL 0 objects of class PRIVATE_KEY"), output
    assert lines["certificate lre-seal-2027"].startswith("FAIL 0 objects of class CERTIFICATE")


def test_a_wrong_pin_says_so_and_never_shows_a_pin(
    dev_var: DevPaths, token_copy: Path, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("31415926\n")
    code, lines, output = check_token(dev_var, token_copy, pin_file=str(wrong))
    assert code == 1, output
    assert lines["login"] == "FAIL token login refused: incorrect PIN"
    assert list(lines) == CHECKS[:7]  # nothing after the login could run
    assert "31415926" not in output
    assert dev_var.pin_file.read_text().strip() not in output


def test_a_missing_module_or_token_label_stops_early(dev_var: DevPaths, token_copy: Path) -> None:
    code, lines, _ = check_token(dev_var, token_copy, pkcs11_module="/nonexistent/libhsm.so")
    assert (code, lines) == (1, {"module": "FAIL /nonexistent/libhsm.so does not exist"})
    code, lines, _ = check_token(dev_var, token_copy, token_label="production")
    assert code == 1
    assert lines["token"] == "FAIL no token labelled 'production' (tokens seen: 'lre')"


def test_a_tsa_key_whose_certificate_is_not_for_timestamping_fails(
    dev_var: DevPaths, token_copy: Path
) -> None:
    code, lines, output = check_token(dev_var, token_copy, tsa_key_label="lre-seal")
    assert code == 1, output
    assert lines["certificate lre-seal"] == (
        "FAIL a TSA certificate needs one critical extended key usage: timeStamping"
    )
    assert lines["key lre-seal"].startswith("OK "), output


@pytest.mark.parametrize(
    ("wrap_mechanism", "mechanism", "flags"),
    [
        ("aes-kw", "AES_KEY_WRAP", "WRAP and UNWRAP"),
        ("aes-kw-ecb", "AES_ECB", "ENCRYPT and DECRYPT"),
    ],
)
def test_the_key_wrap_fallback_is_checked_when_configured(
    dev_var: DevPaths, token_copy: Path, wrap_mechanism: str, mechanism: str, flags: str
) -> None:
    code, lines, output = check_token(dev_var, token_copy, wrap_mechanism=wrap_mechanism)
    assert code == 0, output
    assert list(lines) == [
        f"mechanism {mechanism}" if what == "mechanism AES_GCM" else what for what in CHECKS
    ]
    assert lines[f"mechanism {mechanism}"] == f"OK {flags} for wrapping content keys"
    assert lines["key lre-wrap"].endswith(f"wraps and unwraps a test key ({wrap_mechanism})")


def test_an_older_wrap_key_missing_from_the_token_is_named(
    dev_var: DevPaths, token_copy: Path
) -> None:
    code, lines, output = check_token(dev_var, token_copy, wrap_key_labels_previous="lre-wrap-2025")
    assert code == 1, output
    assert lines["key lre-wrap-2025"] == (
        "FAIL 0 objects of class SECRET_KEY labelled 'lre-wrap-2025'"
    )
    assert lines["key lre-wrap"].startswith("OK "), output
