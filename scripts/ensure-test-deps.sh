#!/usr/bin/env bash
# What the tests need beyond npm, installed when missing and this user can (root with apt-get): a C compiler (the
# doctor's tests build stub shared libraries), Debian's chromium (the report test drives it with playwright-core) and
# OpenSSH's server and client (the ssh launcher's tests), Redis's server and OpenSSL (the queue's tests: AOF, a
# password and TLS with a test certificate).
# Otherwise it says how, and the tests that need them fail loudly.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then need+=(chromium); fi
# the ssh launcher's tests start OpenSSH's server on a loopback port
{ [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null 2>&1 && command -v scp >/dev/null 2>&1; } || need+=(openssh-server openssh-client)
# the queue's tests start redis-server on a loopback port; openssl makes their TLS certificates
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} (Debian packages) for the tests..." >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  exit 0
fi
echo "warning: the tests need ${need[*]}, which cannot be installed here (needs root and apt-get): sudo apt-get install -y ${need[*]}" >&2
