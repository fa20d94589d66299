#!/usr/bin/env bash
# The report test opens report.html in a real browser: Debian's chromium, driven by playwright-core. Installs it
# when missing and this user can (root with apt-get); otherwise says how, and the browser test fails loudly.
set -euo pipefail
for c in chromium chromium-browser; do
  if command -v "$c" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (Debian package) for the report test..." >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "warning: chromium is not installed and cannot be installed here (needs root and apt-get): sudo apt-get install -y chromium" >&2
