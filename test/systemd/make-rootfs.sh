#!/usr/bin/env bash
# Builds (once) the Debian rootfs the systemd integration tests boot with systemd-nspawn.
# Cached under /var/cache/flux-pam/, keyed on the package list, so a change rebuilds it.
# Prints the rootfs path on stdout.
set -euo pipefail

PACKAGES="systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,openssh-server,openssh-client,libpam-modules,libpam-runtime,pamtester,procps,iproute2,sshpass"
USERS="alice:1000 bob:1001 carol:1002"
key=$(printf '%s\n%s\nv2\n' "$PACKAGES" "$USERS" | sha256sum | cut -c1-12)
cache=${FLUX_PAM_CACHE:-/var/cache/flux-pam}
rootfs="$cache/rootfs-$key"

if [ -f "$rootfs/.complete" ]; then
  echo "$rootfs"
  exit 0
fi

mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$cache"
tmp="$rootfs.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tmp" "$mirror" >"$cache/debootstrap-$key.log" 2>&1 \
  || { echo "make-rootfs: debootstrap failed, see $cache/debootstrap-$key.log" >&2; exit 1; }

for u in $USERS; do
  chroot "$tmp" useradd -m -s /bin/bash -u "${u#*:}" "${u%%:*}"
  echo "${u%%:*}:pw-${u%%:*}" | chroot "$tmp" chpasswd
done
# sshd: password logins on the container's own loopback, keys generated at build time.
chroot "$tmp" ssh-keygen -A >/dev/null
printf 'PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\n' \
  > "$tmp/etc/ssh/sshd_config.d/flux-pam-test.conf"
echo flux-pam-test > "$tmp/etc/hostname"
touch "$tmp/.complete"
trap - EXIT
rm -rf "$rootfs"
mv "$tmp" "$rootfs"
echo "$rootfs"
