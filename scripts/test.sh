#!/usr/bin/env bash
# Install facecluster with its test tools, the browser the web tests drive, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's Chromium (browser tests) and ExifTool (reads back the XMP sidecars), when apt-get is there.
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v exiftool >/dev/null 2>&1 || missing="$missing libimage-exiftool-perl"
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
    || echo "warning: could not install$missing; the tests that need them will skip" >&2
fi
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
status=0
python3 -m pytest -q "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
