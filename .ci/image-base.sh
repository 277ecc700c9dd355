#!/usr/bin/env bash
# Prepare what building the Containerfile needs on a machine without Docker Hub, once:
#
#   CACHE/base     an OCI layout, tag "bookworm": Debian bookworm (debootstrap --variant=minbase,
#                  from the mirror apt already uses) with python3, so the image test builds from it
#                  without reaching any network
#   CACHE/wheels   the wheels of Dockyard's dependencies, of pip and of setuptools (to build
#                  Dockyard's own wheel from the checkout), for `pip install --no-index` in the build
#
# CACHE is .ci/cache/image in the checkout unless DOCKYARD_IMAGE_CACHE names another folder;
# PYTHON is the interpreter whose pip fetches the wheels (the project's venv under `make`).
# Run as root (debootstrap). Idempotent: the debootstrap (minutes) runs only when the base is
# missing; the wheels are fetched again each time, so a changed dependency list is followed.
# tests/packaging/test_container_image.py builds, pushes, pulls and runs the image from these.
#
# `image-base.sh --background` (what `make test` runs) takes CACHE/.lock, then does the same work
# in the background, its output in CACHE/image-base.log, while the tests start: the lock is held
# until the work ends, and the image test waits for it before it looks at the cache.
# `image-base.sh --wait` waits for that work and exits with its status.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${DOCKYARD_IMAGE_CACHE:-$ROOT/.ci/cache/image}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SUITE=bookworm
LOCK="$CACHE/.lock"
LOG="$CACHE/image-base.log"
STATUS="$CACHE/.status"

if [[ "${1:-}" == --wait ]]; then
    [[ -f "$LOCK" ]] || exit 0
    flock --shared "$LOCK" true
    status="$(cat "$STATUS" 2>/dev/null || echo 1)"
    if [[ "$status" != 0 ]]; then
        tail -n 30 "$LOG" >&2 || true
        echo "image-base.sh: the background preparation failed (status ${status}), log: $LOG" >&2
    fi
    exit "$status"
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "image-base.sh: must run as root (debootstrap)" >&2
    exit 1
fi
for tool in debootstrap umoci; do
    if ! command -v "$tool" >/dev/null; then
        echo "image-base.sh: $tool is missing; run .ci/install-peers.sh first" >&2
        exit 1
    fi
done

# The Debian mirror apt uses here: the first URI serving $SUITE in the deb822 sources, else in
# a one-line sources.list, else Debian's own redirector.
mirror() {
    local file uri
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        uri=$(awk -v suite="$SUITE" '
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = uri }
            /^$/ { if (found) { print found; exit } uri = "" }
            END { if (found) print found }' "$file" | head -n1)
        if [[ -n "$uri" ]]; then
            echo "$uri"
            return
        fi
    done
    if [[ -f /etc/apt/sources.list ]]; then
        uri=$(awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list)
        if [[ -n "$uri" ]]; then
            echo "$uri"
            return
        fi
    fi
    echo "http://deb.debian.org/debian"
}

mkdir -p "$CACHE"

if [[ "${1:-}" == --background ]]; then
    rm -f "$STATUS"
    # Locked here, before the caller goes on, so that no test looks at the cache before the
    # work has begun; the background shell inherits the locked descriptor and holds it to its end.
    exec 9>"$LOCK"
    flock --exclusive 9
    (
        set +e
        IMAGE_BASE_LOCKED=1 bash "$0" 9>&- >"$LOG" 2>&1
        echo $? >"$STATUS"
    ) </dev/null >/dev/null 2>&1 &
    echo "image-base.sh: preparing in the background (log: $LOG)"
    exit 0
fi
# Two preparations at once would both debootstrap and then race to move the base in place.
if [[ -z "${IMAGE_BASE_LOCKED:-}" ]]; then
    exec 9>"$LOCK"
    flock --exclusive 9
    rm -f "$STATUS" # an earlier background run's failure no longer holds
fi

if [[ ! -f "$CACHE/base/index.json" ]]; then
    MIRROR="$(mirror)"
    WORK="$(mktemp -d "$CACHE/.base-XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    echo "image-base.sh: debootstrap $SUITE from $MIRROR (a few minutes, once)"
    started=$SECONDS
    debootstrap --variant=minbase --include=python3 "$SUITE" "$WORK/rootfs" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 30 "$WORK/debootstrap.log" >&2
        exit 1
    }
    # What an image does not need: downloaded packages and package lists (the build's own
    # apt-get, when one runs, fetches fresh lists).
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"* \
        "$WORK/rootfs/var/log/"*.log
    tar -C "$WORK/rootfs" --numeric-owner --exclude="./dev/*" -cf "$WORK/rootfs.tar" .
    umoci init --layout "$WORK/base"
    umoci new --image "$WORK/base:$SUITE"
    umoci raw add-layer --image "$WORK/base:$SUITE" "$WORK/rootfs.tar"
    umoci config --image "$WORK/base:$SUITE" \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --config.cmd bash \
        --os linux --architecture "$(dpkg --print-architecture)"
    umoci gc --layout "$WORK/base"
    mv "$WORK/base" "$CACHE/base"
    rm -rf "$WORK"
    trap - EXIT
    echo "image-base.sh: base ready in $((SECONDS - started)) s: $CACHE/base:$SUITE"
else
    echo "image-base.sh: base already in $CACHE/base"
fi

# The wheels are resolved by the base's own python3, in a chroot: its version decides which
# wheels fit and which dependencies apply (redis needs async-timeout before Python 3.11.3, and
# bookworm has 3.11.2), which pip running elsewhere would judge by its own interpreter.
# Fetched again only when the dependency list changed.
deps_now="$("$PYTHON" - "$ROOT/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join([*tomllib.load(f)["project"]["dependencies"], "pip", "setuptools>=77"]))
EOF
)"
if [[ -f "$CACHE/wheels/requirements.txt" && "$(cat "$CACHE/wheels/requirements.txt")" == "$deps_now" ]]; then
    echo "image-base.sh: wheels already in $CACHE/wheels"
    exit 0
fi
WORK="$(mktemp -d "$CACHE/.wheels-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
umoci unpack --image "$CACHE/base:$SUITE" "$WORK/bundle" >/dev/null
rootfs="$WORK/bundle/rootfs"
mkdir -p "$rootfs/wheels"
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$rootfs/wheels" pip
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
# A machine whose HTTPS goes through an inspecting proxy trusts its CA in the system bundle.
bundle="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
certs=()
if [[ -f "$bundle" ]]; then
    cp "$bundle" "$rootfs/wheels-ca.crt"
    certs=(--cert /wheels-ca.crt)
fi
printf '%s\n' "$deps_now" >"$rootfs/wheels/requirements.txt"
pip_wheel="$(cd "$rootfs/wheels" && ls pip-*.whl | sort -V | tail -n 1)"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    chroot "$rootfs" python3 "/wheels/$pip_wheel/pip" wheel --quiet --disable-pip-version-check \
    --no-cache-dir "${certs[@]}" --wheel-dir /wheels -r /wheels/requirements.txt
rm -rf "$CACHE/wheels"
mv "$rootfs/wheels" "$CACHE/wheels"
echo "image-base.sh: $(ls "$CACHE/wheels" | grep -c '\.whl$') wheels in $CACHE/wheels"
