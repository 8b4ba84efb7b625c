"""The signer's health follows the token, and recovers without a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lre.signer.devsetup import DevPaths
from tests.support.processes import BIN, free_port, running, wait_for
from tests.support.rpc import NOT_SERVING, SERVING, health_status
from tests.support.signer import signer_env

SERVICE = "lre.v1.SigningService"


def _start(dev_var: DevPaths, tmp_path: Path, **env: str):
    grpc_port, http_port = free_port(), free_port()
    address = f"127.0.0.1:{grpc_port}"
    log = tmp_path / "signer.log"
    return (
        address,
        log,
        running(
            [str(BIN / "lre-signer"), "serve"],
            signer_env(dev_var, grpc_port, http_port, **env),
            log,
        ),
    )


def test_wrong_pin_is_not_serving_until_the_pin_is_fixed(dev_var: DevPaths, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("not-the-pin\n")
    address, log, process = _start(dev_var, tmp_path, LRE_SIGNER_PIN_FILE=str(pin_file))
    with process:
        assert wait_for(lambda: health_status(address, SERVICE) == NOT_SERVING), log.read_text()
        assert health_status(address) == SERVING  # liveness: the process, not the token
        pin_file.write_text(dev_var.pin_file.read_text())
        assert wait_for(lambda: health_status(address, SERVICE) == SERVING), log.read_text()
    logged = log.read_text()
    assert "incorrect PIN" in logged
    assert "not-the-pin" not in logged
    assert dev_var.pin_file.read_text().strip() not in logged


def test_missing_module_is_not_serving_until_it_appears(dev_var: DevPaths, tmp_path: Path) -> None:
    module = tmp_path / "libpkcs11.so"
    address, log, process = _start(dev_var, tmp_path, LRE_SIGNER_PKCS11_MODULE=str(module))
    with process:
        assert wait_for(lambda: health_status(address, SERVICE) == NOT_SERVING), log.read_text()
        real = Path(__import__("lre.signer.devsetup", fromlist=["softhsm_module"]).softhsm_module())
        module.symlink_to(real)
        assert wait_for(lambda: health_status(address, SERVICE) == SERVING), log.read_text()
    assert "PKCS#11 module not found" in log.read_text()


@pytest.mark.parametrize("label_env", ["LRE_SIGNER_TOKEN_LABEL"])
def test_unknown_token_is_not_serving(dev_var: DevPaths, tmp_path: Path, label_env: str) -> None:
    address, log, process = _start(dev_var, tmp_path, **{label_env: "no-such-token"})
    with process:
        assert wait_for(lambda: health_status(address, SERVICE) == NOT_SERVING), log.read_text()
    assert "no token labelled" in log.read_text()


def _private_copy(dev_var: DevPaths, tmp_path: Path) -> DevPaths:
    """A copy of the development token and config that this test may break."""
    root = tmp_path / "var"
    shutil.copytree(dev_var.root, root)
    for text_file in (root / "lre.toml", root / "softhsm" / "softhsm2.conf"):
        text_file.write_text(
            text_file.read_text().replace(str(dev_var.root.resolve()), str(root.resolve()))
        )
    return DevPaths(root)


def test_token_removed_is_not_serving_until_it_is_back(dev_var: DevPaths, tmp_path: Path) -> None:
    private = _private_copy(dev_var, tmp_path)
    address, log, process = _start(private, tmp_path)
    with process:
        assert wait_for(lambda: health_status(address, SERVICE) == SERVING), log.read_text()
        (token_dir,) = (private.root / "softhsm" / "tokens").iterdir()
        token_dir.rename(tmp_path / "removed-token")
        assert wait_for(lambda: health_status(address, SERVICE) == NOT_SERVING), log.read_text()
        (tmp_path / "removed-token").rename(token_dir)
        assert wait_for(lambda: health_status(address, SERVICE) == SERVING), log.read_text()
