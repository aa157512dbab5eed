#!/usr/bin/env bash
# The test suite's Debian packages (scripts/test-packages.txt): `npm test` runs this first (pretest).
# As root, installs what is missing with one apt-get line; otherwise prints the command to run and fails.
# `--install` (.ci/run): update the package lists and install the whole list, missing or not.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t packages < <(sed -e 's/#.*//' "${NETBOOT_TEST_PACKAGES:-scripts/test-packages.txt}" | tr -s ' \t' '\n' | sed '/^$/d')

install() {
  export DEBIAN_FRONTEND=noninteractive
  # Never let a package start its daemon (tftpd-hpa, nginx, dnsmasq, isc-dhcp-server…): the tests start
  # every server they need themselves, on loopback or inside network namespaces they create.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ "${1:-}" = "--install" ]; then
  install "${packages[@]}"
  exit 0
fi
if ! command -v dpkg-query >/dev/null; then
  echo "pretest: the test suite runs on Debian 12 as root (network namespaces, QEMU, Debian's peers); this is not Debian. Run single test files with: bun test test/wire" >&2
  exit 1
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "pretest: installing ${#missing[@]} Debian package(s) the tests need: ${missing[*]}" >&2
    install "${missing[@]}"
  else
    echo "pretest: the tests need these Debian packages, and root: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "pretest: the suite creates network namespaces and needs root: sudo npm test" >&2
  exit 1
fi
