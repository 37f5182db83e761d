#!/usr/bin/env bash
# Prepare a Debian 12 machine to develop and test mevfleet: Debian packages, a running Docker engine,
# the Python venv at $REPO/.venv and, when the repo pins npm artifacts, node_modules.
#
# Run as root. Idempotent: a re-run only does what changed, and prints nothing when nothing did.
# Relies on nothing but stock Debian: the venv is made with Debian's python3, not whatever python
# happens to be first on PATH.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO/.venv"
PYTHON=/usr/bin/python3
DOCKERD_LOG=/var/log/mevfleet-dockerd.log
DOCKER_WAIT_S=60
PACKAGES=(docker.io debootstrap iptables openssh-client nftables python3-venv python3-dev gcc git make
          curl ca-certificates
          # promtool and amtool: the unit tests check the alert rules and the rendered monitoring configs.
          prometheus prometheus-alertmanager
          # tests/agent/control: the fleet bus and the control plane's history, started by the fixtures.
          redis-server postgresql
          # tests/agent/control/test_dashboard.py drives the control plane's dashboard in a real headless browser.
          chromium
          # ansible-core and the amazon.aws collection: tests/unit/test_cloud_inventory.py parses the rendered
          # aws_ec2 inventory with ansible-inventory against the moto server.
          ansible
          # The Ethereum pair's npm bundles compile native addons (bcrypto, blst, classic-level) with node-gyp.
          g++
          # tests/unit/test_journal_tls_front.py runs the rendered journal TLS front through the real stunnel
          # (Debian starts no instance of it: its units are templates).
          stunnel4)

STEP_LOG=$(mktemp)
trap 'rm -f -- "$STEP_LOG"' EXIT

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# Run a step with its output kept aside: shown only if the step fails.
quietly() {
    local what=$1
    shift
    if ! "$@" >"$STEP_LOG" 2>&1; then
        printf 'bootstrap: error: %s failed; its last output:\n' "$what" >&2
        tail -n 40 -- "$STEP_LOG" >&2
        exit 1
    fi
}

is_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# sha256 over the given files, one line: the stamp that says "installed from exactly these".
digest_of() {
    sha256sum -- "$@" | sha256sum | cut -d' ' -f1
}

stamp_matches() {
    local stamp=$1
    shift
    [[ -f $stamp && $(<"$stamp") == "$(digest_of "$@")" ]]
}

ensure_root_on_debian() {
    [[ $EUID -eq 0 ]] || die "run as root (it installs Debian packages and starts the Docker engine)"
    [[ -f /etc/debian_version ]] || die "this script supports Debian 12 only"
}

ensure_packages() {
    local wanted=("${PACKAGES[@]}") missing=() package
    # Any npm will do (the repo only runs `npm ci`); Debian's only when there is none.
    command -v npm >/dev/null || wanted+=(nodejs npm)
    for package in "${wanted[@]}"; do
        is_installed "$package" || missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    quietly "apt-get update" apt-get update
    quietly "apt-get install ${missing[*]}" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    say "installed Debian packages: ${missing[*]}"
    # prometheus and alertmanager are here for promtool/amtool only: Debian starts their daemons, which
    # would listen on every address of this machine. Keep them off; Redis and PostgreSQL too (the tests
    # start their own, in temporary directories).
    if [[ -d /run/systemd/system ]]; then
        quietly "disable monitoring daemons" systemctl disable --now prometheus.service \
            prometheus-alertmanager.service prometheus-node-exporter.service redis-server.service \
            postgresql.service
    fi
}

# Each test host runs systemd, which takes inotify instances; the kernel default (128 per user) stops
# a full devnet plus a test fleet from booting. Raise it (never lower it) and persist that.
ensure_inotify_limits() {
    local key=fs.inotify.max_user_instances want=1024 have
    have=$(sysctl -n "$key")
    ((have >= want)) && return 0
    quietly "sysctl $key" sysctl -q -w "$key=$want"
    echo "$key = $want" >/etc/sysctl.d/60-mevfleet-devnet-inotify.conf
    say "raised $key from $have to $want (test hosts run systemd)"
}

# The client on PATH may be newer than Debian's engine; either one talking to it is enough.
docker_answers() {
    local client
    for client in docker /usr/bin/docker; do
        if command -v "$client" >/dev/null && "$client" info >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

ensure_docker_engine() {
    docker_answers && return 0
    if [[ -d /run/systemd/system ]]; then  # systemd is PID 1 (the test sd_booted() uses)
        quietly "systemctl start docker" systemctl start docker
        say "started the Docker engine (systemctl start docker)"
    else
        # No service manager here: detach dockerd from this shell so it outlives the script.
        setsid nohup /usr/sbin/dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        say "started dockerd in the background (log: $DOCKERD_LOG)"
    fi
    local waited
    for ((waited = 0; waited < DOCKER_WAIT_S; waited++)); do
        docker_answers && return 0
        sleep 1
    done
    die "the Docker engine did not answer 'docker info' within ${DOCKER_WAIT_S}s; see $DOCKERD_LOG or 'journalctl -u docker'"
}

ensure_venv() {
    local stamp="$VENV/.mevfleet-pip-stamp" pyprojects=("$REPO/pyproject.toml" "$REPO/agent/pyproject.toml")
    if [[ ! -x $VENV/bin/python ]]; then
        quietly "python3 -m venv $VENV" "$PYTHON" -m venv "$VENV"
        say "created the venv $VENV"
    fi
    stamp_matches "$stamp" "${pyprojects[@]}" && return 0
    quietly "pip install" "$VENV/bin/pip" install --disable-pip-version-check \
        -e "${REPO}[dev]" -e "$REPO/agent[control]"
    digest_of "${pyprojects[@]}" >"$stamp"
    say "installed mevfleet[dev] and mevagent into $VENV (editable)"
}

ensure_node_modules() {
    local lock="$REPO/package-lock.json" stamp="$REPO/node_modules/.mevfleet-npm-stamp"
    [[ -f $lock ]] || return 0
    stamp_matches "$stamp" "$lock" && return 0
    # npm ci starts from an empty node_modules, so the stamp is written after it.
    quietly "npm ci" env -C "$REPO" npm ci --no-audit --no-fund --loglevel=error
    digest_of "$lock" >"$stamp"
    say "installed node_modules from package-lock.json (npm ci)"
}

# Contract artifacts `npm ci` cannot install from package.json. @venusprotocol/venus-protocol
# (testbed/venus.py) pins dependencies the registry does not have
# (@venusprotocol/governance-contracts ^2.13.0); its artifacts need none of them. @aave/protocol-v2
# (testbed/aave_v2.py, standing in for Radiant) depends on nothing its artifacts need either,
# and is kept out of package.json with it. Each pinned tarball is fetched with `npm pack`, checked against
# its registry integrity and its contract artifacts (no build-info, no .dbg.json) are kept under
# node_modules/.cache, where `npm ci` clears them (and this re-fetches them) when the lock file changes.
VENUS_PACKAGE=@venusprotocol/venus-protocol@10.3.0
VENUS_INTEGRITY=sha512-qGvjvUgYhK5REF/Cj4Lg4FNBMrEscnSSxr4sHL4WDlb2woPucvqLfGkw/f3XKFanf+lWD1G4K0Gzpdc430+BeQ==
AAVE_V2_PACKAGE=@aave/protocol-v2@1.0.1
AAVE_V2_INTEGRITY=sha512-MU3WiigW89DWDpCtvaw4rafih7RbADB45uUM/zqfnOD4g9JNUVfeT6MrjV4/DP/JPA2Iv5ySKSx+a1OfUES0Pg==
# @uniswap/swap-router-contracts (testbed/evm.py: SwapRouter02) depends on hardhat-watcher, whose peer is hardhat;
# the one artifact used needs none of it.
ROUTER02_PACKAGE=@uniswap/swap-router-contracts@1.3.1
ROUTER02_INTEGRITY=sha512-mh/YNbwKb7Mut96VuEtL+Z5bRe0xVIbjjiryn+iMMrK2sFKhR4duk/86mEz0UO5gSx4pQIw9G5276P5heY/7Rg==

# ensure_npm_artifacts PACKAGE INTEGRITY CACHE-DIR-NAME TAR-PATTERN...
ensure_npm_artifacts() {
    local package=$1 integrity=$2 dir="$REPO/node_modules/.cache/$3" tmp tarball
    shift 3
    [[ -f $dir/.complete ]] && return 0
    tmp=$(mktemp -d)
    quietly "npm pack $package" npm pack --silent --pack-destination "$tmp" "$package"
    tarball=$(find "$tmp" -name '*.tgz' -print -quit)
    if [[ "sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)" != "$integrity" ]]; then
        rm -rf -- "$tmp"
        die "$package: the tarball does not match its pinned integrity"
    fi
    rm -rf -- "$dir"
    mkdir -p -- "$dir"
    quietly "unpack $package" tar -xzf "$tarball" -C "$dir" --strip-components=1 \
        --wildcards --exclude='*.dbg.json' "$@" package/package.json
    rm -rf -- "$tmp"
    touch -- "$dir/.complete"
    say "unpacked the $package contract artifacts into $dir"
}

ensure_venus_artifacts() {
    ensure_npm_artifacts "$VENUS_PACKAGE" "$VENUS_INTEGRITY" venus-protocol-10.3.0 \
        'package/artifacts/contracts/*' 'package/artifacts/@venusprotocol/oracle/*'
}

ensure_aave_v2_artifacts() {
    ensure_npm_artifacts "$AAVE_V2_PACKAGE" "$AAVE_V2_INTEGRITY" aave-protocol-v2-1.0.1 'package/artifacts/contracts/*'
}

ensure_router02_artifacts() {
    ensure_npm_artifacts "$ROUTER02_PACKAGE" "$ROUTER02_INTEGRITY" swap-router-contracts-1.3.1 \
        'package/artifacts/contracts/SwapRouter02.sol/*'
}

# The control plane's dashboard serves its chart library from the host (no CDN): copied from node_modules.
ensure_dashboard_assets() {
    quietly "dashboard assets" "$VENV/bin/python" -m mevcontrol.dashboard.vendor
}

ensure_root_on_debian
ensure_packages
ensure_inotify_limits
ensure_docker_engine
ensure_venv
ensure_node_modules
ensure_venus_artifacts
ensure_aave_v2_artifacts
ensure_router02_artifacts
ensure_dashboard_assets
