#!/usr/bin/env bash
# Install the real peer tools that the interop tests and benchmarks drive against Dockyard:
# skopeo, podman, buildah, umoci, CNCF Distribution (docker-registry), containerd (and ctr),
# htpasswd, wrk and hey;
# and for the web pages' browser tests, Chromium and axe-core (from the npm registry).
# Debian bookworm, run as root. Idempotent: re-running only re-checks what is already there.
set -euo pipefail

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-peers.sh: must run as root" >&2
    exit 1
fi

PACKAGES=(
    # the peers themselves
    skopeo podman buildah umoci docker-registry apache2-utils wrk hey postgresql redis-server
    # containerd and ctr: the registry-proxying client that sends `?ns=` (tests/interop)
    containerd
    # what podman/buildah need with --no-install-recommends: an OCI runtime, conmon, the
    # containers config files (policy.json, registries.conf), subuid/subgid tools, an init for
    # `--init`, and a network stack (netavark + aardvark-dns, CNI plugins as fallback).
    # runc: `podman run` here (crun 1.8 refuses this machine's hybrid cgroup layout)
    runc crun conmon uidmap catatonit slirp4netns netavark aardvark-dns containernetworking-plugins
    golang-github-containers-common golang-github-containers-image
    ca-certificates
    # the Debian base the image test builds the Containerfile on (.ci/image-base.sh)
    debootstrap
    # the web pages' browser tests (tests/web): Playwright drives this Chromium, never its own
    chromium fonts-dejavu-core
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

# PEERS_FORCE_INSTALL=1 reinstalls even when dpkg says everything is present.
if ((${#missing[@]})) || [[ "${PEERS_FORCE_INSTALL:-0}" == 1 ]]; then
    echo "install-peers.sh: installing ${missing[*]:-(forced)}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
else
    echo "install-peers.sh: all packages already installed"
fi

# axe-core, the accessibility checker tests/web injects into every page it visits: into a
# git-ignored folder of the project, so a fresh clone gets it here and nowhere else.
AXE_DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/web/node"
if [[ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]]; then
    if ! command -v npm >/dev/null; then
        echo "install-peers.sh: npm is needed to install axe-core" >&2
        exit 1
    fi
    npm install --prefix "$AXE_DIR" --no-audit --no-fund --no-save axe-core@4
fi

# Every peer must actually run; fail loudly (non-zero exit) naming the one that does not.
failed=0
check() {
    local name=$1
    shift
    local out
    if out=$("$@" 2>&1); then
        printf '  %-16s %s\n' "$name" "$(head -n1 <<<"$out")"
    else
        printf 'install-peers.sh: %s does not run: %s\n%s\n' "$name" "$*" "$out" >&2
        failed=1
    fi
}

echo "install-peers.sh: peer versions"
check skopeo skopeo --version
check podman podman --version
check buildah buildah --version
check umoci umoci --version
check docker-registry docker-registry --version
check containerd containerd --version
check ctr ctr --version
# htpasswd has no --version; a bcrypt hash on stdout proves it works.
check htpasswd htpasswd -nbB probe probe
# wrk -v prints its version and exits 1; accept that, but require the banner.
check wrk bash -c 'wrk -v 2>&1 | grep "^wrk "'
check postgres bash -c "ls /usr/lib/postgresql/*/bin/postgres"
check redis-server redis-server --version
# hey has no --version either; its usage text (exit 2) proves it starts.
check hey bash -c 'hey 2>&1 | grep -q "^Usage: hey" && echo "hey (usage printed)"'
check crun crun --version
check conmon conmon --version
check runc runc --version
check debootstrap bash -c 'debootstrap --version'
# Debian's wrapper script warns on stderr about the machine's memory before the version.
check chromium bash -c 'chromium --version 2>/dev/null'
check axe-core bash -c "grep -o '\"version\": *\"[^\"]*\"' '$AXE_DIR/node_modules/axe-core/package.json'"

if ((failed)); then
    echo "install-peers.sh: FAILED: some peer tools do not run" >&2
    exit 1
fi
echo "install-peers.sh: OK"
