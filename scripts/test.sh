#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs the real clients and servers
# the tests drive (as root, via apt-get), installs cargobay with its test extras, then pytest
# twice, side by side: the whole suite on SQLite + filesystem, and the backend-sensitive tests (marked
# `backend`, see tests/conftest.py) on PostgreSQL + S3: a throwaway PostgreSQL cluster and a
# moto S3 server that the tests start (tests/pgcluster.py, tests/s3server.py). Extra arguments
# go to both runs; CARGOBAY_TEST_POSTGRES=0 skips the second.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(skopeo podman buildah docker.io docker-registry wrk curl postgresql nginx-light
  util-linux-extra
  chromium chromium-driver)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  # Install without starting Debian's own nginx/PostgreSQL services: the tests start private
  # instances on 127.0.0.1 and nothing else should listen.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
ruff check src tests benchmarks
ruff format --check -q src tests benchmarks
status=0
# The two runs go side by side: most of a test's time is spent waiting on subprocesses (skopeo,
# docker, the servers), so on two cores the pair takes little longer than the longer run alone.
# Every server a test starts picks a free port and its own directories, so they do not meet.
pg_log=""
pg_pid=""
if [ "${CARGOBAY_TEST_POSTGRES:-1}" != 0 ]; then
  pg_log="$(mktemp)"
  # Lower case only: podman derives image names from the paths of OCI layouts under it.
  pg_tmp="/tmp/cargobay-backend-tests-$$"
  rm -rf "$pg_tmp" && mkdir -m 0700 "$pg_tmp"
  CARGOBAY_TEST_DATABASE=postgres CARGOBAY_TEST_STORAGE=s3 python3 -m pytest -m backend \
    -p no:cacheprovider --basetemp "$pg_tmp/t" "$@" >"$pg_log" 2>&1 &
  pg_pid=$!
  trap 'kill "$pg_pid" 2>/dev/null || true; rm -rf "$pg_log" "$pg_tmp"' EXIT
fi
echo "== tests on SQLite metadata and filesystem storage"
python3 -m pytest "$@" || status=$?
if [ -n "$pg_pid" ]; then
  rc=0
  wait "$pg_pid" || rc=$?
  echo "== backend-sensitive tests on PostgreSQL metadata and S3 storage"
  cat "$pg_log"
  # 5: the arguments selected no backend-sensitive test, which is fine here.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=$rc; fi
fi
exit "$status"
