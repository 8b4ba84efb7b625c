#!/usr/bin/env bash
# System packages the service and its tests need. As root, installs what is
# missing; otherwise prints the command and fails if a required one is missing.
# LRE_WITH_TEST_TOOLS=1 also wants what only tests use: promtool (the alert
# rules), libfaketime (a server whose wall clock jumps 17 days),
# systemd-analyze (the units in deploy/systemd) and kubectl (the Kubernetes kit). Optional outside CI: without
# them those tests skip, and say so.
set -euo pipefail
required=()
optional=()
command -v softhsm2-util >/dev/null || required+=(softhsm2)
command -v openssl >/dev/null || required+=(openssl)
# PDF proofs: Typst (a Python wheel) lays them out with the DejaVu fonts, embedded.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || required+=(fonts-dejavu-core)
if [ -n "${LRE_WITH_TEST_TOOLS:-}" ]; then
  command -v promtool >/dev/null || optional+=(prometheus)
  compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null || optional+=(faketime)
  command -v systemd-analyze >/dev/null || optional+=(systemd)
  # `kubectl kustomize` renders the Kubernetes kit (deploy/kubernetes).
  command -v kubectl >/dev/null || optional+=(kubernetes-client)
  command -v pdfsig >/dev/null || optional+=(poppler-utils)
  command -v qpdf >/dev/null || optional+=(qpdf)
  command -v certutil >/dev/null || optional+=(libnss3-tools)
  # The signer through p11-kit's remoting (the HSM sidecar path).
  command -v p11-kit >/dev/null || optional+=(p11-kit)
  compgen -G "/usr/lib/*/pkcs11/p11-kit-client.so" >/dev/null || optional+=(p11-kit-modules)
fi
missing=("${required[@]}" "${optional[@]}")
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
elif [ ${#required[@]} -gt 0 ]; then
  echo "Missing system packages. Run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
else
  echo "Optional: sudo apt-get install -y ${optional[*]} (test tools; their tests skip without them)" >&2
fi
