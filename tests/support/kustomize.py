"""The Kubernetes kit as `kubectl kustomize` renders it (its built-in
kustomize: what `kubectl apply -k` applies)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.contract import DEPLOY

KIT = DEPLOY / "kubernetes"


@functools.cache
def _rendered(directory: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(KIT / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d is not None)


def render(directory: str) -> list[dict[str, Any]]:
    """The objects ``directory`` (under deploy/kubernetes) renders to, in
    kustomize's apply order; skips without kubectl, except under CI."""
    if shutil.which("kubectl") is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is required under CI (Debian's kubernetes-client)")
        pytest.skip("needs kubectl (Debian's kubernetes-client)")
    return list(_rendered(directory))
