#!/usr/bin/env bash
# Installs what building and testing flux-pam needs, from Debian's apt and npm only.
# Idempotent and quick when everything is there; apt runs only for what is missing (and needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  nodejs npm                                     # npm installs bun (the compiler) and the JS deps
  build-essential libpam0g-dev pamtester         # pam_flux.so and the libpam tests
  dbus util-linux                                # dbus-daemon; flock, setpriv, nsenter
  time                                           # GNU time: peak RSS of the binary (fuzzer, bench)
  systemd-container debootstrap                  # systemd-nspawn containers with real systemd
  mandoc lintian dpkg-dev rpm                    # man page lint, .deb and .rpm packaging
)
missing=()
for p in "${apt_packages[@]}"; do
  # node/npm may come from elsewhere (nodesource, nvm): a working npm is enough
  case $p in nodejs|npm) command -v "${p/nodejs/node}" >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# JS dependencies and the pinned bun, exactly as package-lock.json says.
if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
