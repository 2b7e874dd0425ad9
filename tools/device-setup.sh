#!/usr/bin/env bash
# On the GPU machine (no network, no cJSON): unpack the carried .deps/debs/*.deb into .deps/root so
# the Makefile finds cJSON there. Here, fetch them once with: tools/device-setup.sh --download
set -e
cd "$(dirname "$0")/.."
if [ "${1:-}" = --download ]; then
  mkdir -p .deps/debs && cd .deps/debs && apt-get download libcjson1 libcjson-dev && exit 0
fi
mkdir -p .deps/root
for f in .deps/debs/*.deb; do dpkg -x "$f" .deps/root; done
# the -dev package's libcjson.so is a link to the runtime's .so.1: both now sit in .deps/root
ls .deps/root/usr/lib/x86_64-linux-gnu/libcjson.so >/dev/null
