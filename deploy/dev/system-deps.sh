#!/usr/bin/env bash
# System packages the service and its tests need. Installs them when run as
# root; otherwise prints the command to run and fails.
set -euo pipefail
need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v openssl >/dev/null || need+=(openssl)
[ -n "${LRE_WITH_PROMTOOL:-}" ] && { command -v promtool >/dev/null || need+=(prometheus); }
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
else
  echo "Missing system packages. Run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
