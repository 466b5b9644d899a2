#!/bin/sh
# image.sh - build the container image for real and prove it serves (make test-image).
#
# No Docker engine and no registry here: the base image is made locally with debootstrap and
# imported into podman (cached), the Dockerfile's FROM points at it through BASE, podman builds
# with chroot isolation, and the image is run by exporting its root filesystem and starting
# lossd in a chroot as the image's user: /healthz, a loss, then SIGTERM must drain and exit 0.
set -eu
cd "$(dirname "$0")/.."
BASE_IMG=localhost/lossd-debian-bookworm:base
CACHE=${LOSSD_IMAGE_CACHE:-/var/tmp/lossd-image-cache}
PODMAN="podman --cgroup-manager=cgroupfs"
export DEBIAN_FRONTEND=noninteractive
command -v podman >/dev/null && command -v debootstrap >/dev/null ||
  apt-get install -y -qq --no-install-recommends podman debootstrap >/dev/null

if ! $PODMAN image exists "$BASE_IMG"; then
  echo "image: making the Debian 12 base with debootstrap (about a minute, cached)"
  rm -rf "$CACHE/rootfs"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase bookworm "$CACHE/rootfs" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/debootstrap.log"; exit 1; }
  tar -C "$CACHE/rootfs" -c . | $PODMAN import - "$BASE_IMG" >/dev/null
fi

echo "image: podman build"
t0=$(date +%s)
$PODMAN build --isolation=chroot --build-arg BASE="$BASE_IMG" -t lossd:test . >"$CACHE/build.log" 2>&1 ||
  { tail -30 "$CACHE/build.log"; exit 1; }
size=$($PODMAN image inspect --format '{{.Size}}' lossd:test)
echo "image: built lossd:test in $(( $(date +%s) - t0 )) s, size $((size / 1024 / 1024)) MiB"
user=$($PODMAN image inspect --format '{{.Config.User}}' lossd:test)
[ "$user" = "10001:10001" ] || { echo "image: runs as '$user', expected 10001:10001"; exit 1; }

root=$(mktemp -d)
chmod 755 "$root"
cid=$($PODMAN create lossd:test)
$PODMAN export "$cid" | tar -x -C "$root"
$PODMAN rm "$cid" >/dev/null
[ ! -e "$root/usr/bin/gcc" ] || { echo "image: the runtime stage has a compiler"; exit 1; }
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LOSSD_LISTEN="127.0.0.1:$port" LOSSD_STATE_DIR=/var/lib/lossd LOSSD_DRAIN_DELAY=200 \
  chroot --userspec=10001:10001 "$root" /usr/local/bin/lossd >"$CACHE/run.log" 2>&1 &
pid=$!
ok=0
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && { ok=1; break; }
  sleep 0.05
done
[ $ok = 1 ] || { cat "$CACHE/run.log"; kill $pid; exit 1; }
curl -sf "http://127.0.0.1:$port/healthz"
echo
curl -sf -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/losses/cross_entropy" \
  -d '{"inputs": {"logits": [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], "target": [0, 2]}, "params": {"label_smoothing": 0.1}}' |
  grep -q '"loss":0.3454563805893' || { echo "image: wrong answer"; kill $pid; exit 1; }
curl -sf -X PUT -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/multitask/sessions/img" \
  -d '{"method": "static", "tasks": ["a"]}' >/dev/null
[ -d "$root/var/lib/lossd/sessions/img" ] || { echo "image: the state volume was not written"; exit 1; }
kill -TERM $pid
rc=0
wait $pid || rc=$?
grep -q '"event":"stopped"' "$CACHE/run.log" || { cat "$CACHE/run.log"; echo "image: did not drain"; exit 1; }
rm -rf "$root"
[ $rc = 0 ] || { echo "image: exit code $rc after SIGTERM"; exit 1; }
echo "image: served /healthz and a loss as uid 10001, drained on SIGTERM, exit 0"
