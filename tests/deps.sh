#!/bin/sh
# deps.sh - install the Debian 12 packages lossd needs, only when something is missing.
#   sh tests/deps.sh build   compiler, libraries, cmocka, curl, python3 with numpy and torch
#   sh tests/deps.sh bench   the above plus POT, wrk and nginx for the benchmarks
#   sh tests/deps.sh golden  the above plus POT and torchvision, the golden vectors' references
set -eu
what=${1:-build}
pkgs="build-essential pkg-config libmicrohttpd-dev libuv1-dev libjansson-dev libcmocka-dev curl
python3 python3-numpy python3-torch python3-matplotlib nginx-light"
[ "$what" = bench ] && pkgs="$pkgs python3-pot wrk nginx-light"
[ "$what" = golden ] && pkgs="$pkgs python3-pot python3-torchvision"

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing$missing; install them with apt-get as root (Debian 12)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
