#!/usr/bin/env bash
# Builds xrunner/busybox:test, the image the docker sandbox's tests and benchmark run, with `docker import` from
# Debian's statically linked busybox (package busybox-static): no registry is needed. Idempotent: an image that
# already carries this script's version label is kept.
set -euo pipefail
IMAGE="${1:-xrunner/busybox:test}"
VERSION=1  # bump when the image's contents change
BUSYBOX=/bin/busybox

have="$(docker image inspect -f '{{index .Config.Labels "xrunner.test-image"}}' "$IMAGE" 2>/dev/null || true)"
if [[ "$have" == "$VERSION" ]]; then exit 0; fi
if [[ "$(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true)" != *"not a dynamic executable"* ]]; then
  echo "build-test-image: $BUSYBOX is missing or not static; install busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,workspace}
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do  # every applet: sh, echo, cat, sleep, stty, nc, wget, setsid, dd, ...
  [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/workspace:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | docker import \
  --change "LABEL xrunner.test-image=$VERSION" --change "ENV PATH=/bin" --change 'CMD ["sh"]' - "$IMAGE" >/dev/null
echo "build-test-image: built $IMAGE" >&2
