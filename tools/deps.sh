#!/usr/bin/env bash
# Installs the build dependencies (cJSON, zlib headers) with apt-get when they are missing.
# On the GPU machine (no network) cJSON comes from .deps/*.deb instead: see tools/device-setup.sh.
set -e
[ -d .deps/root/usr/include/cjson ] && exit 0
missing=""
for p in libcjson-dev zlib1g-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $missing >/dev/null
