#!/usr/bin/env bash
# Builds build/flux-pam_VERSION_ARCH.deb with dpkg-deb from a staged `make install`
# (`make deb` runs this). Debian layout, hardening flags from dpkg-buildflags, the module
# stripped and the man pages compressed as policy wants, root:root ownership without root.
# Environment: DEB_MAINTAINER overrides the Maintainer field; MAKE the make to run.
set -euo pipefail
cd "$(dirname "$0")/../.."

MAKE=${MAKE:-make}
die() { echo "build-deb: $*" >&2; exit 1; }

version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' package.json | head -n 1)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
changelog=packaging/debian/changelog
[ "$(dpkg-parsechangelog -l "$changelog" -SVersion)" = "$version" ] ||
  die "$changelog is at $(dpkg-parsechangelog -l "$changelog" -SVersion), package.json at $version: add a changelog entry"
maintainer=${DEB_MAINTAINER:-$(dpkg-parsechangelog -l "$changelog" -SMaintainer)}
# pam_flux.so goes where libpam-modules puts pam_unix.so: /lib/MULTIARCH/security up to
# bookworm, /usr/lib/MULTIARCH/security after. On merged /usr both name one directory, but
# dpkg does not know that: shipping the other alias, flux-pam would own that directory alone
# and dpkg would try to remove it, full of PAM modules, with the package.
securedir=$(dpkg-query -L "libpam-modules:$arch" 2>/dev/null | sed -n 's|/pam_unix\.so$||p' | head -n 1)
securedir=${securedir:-/usr/lib/$multiarch/security}

work=build/deb
root=$work/debian/flux-pam
deb=build/flux-pam_${version}_${arch}.deb
rm -rf "$work"
mkdir -p "$work"

# The same layout as the Debian PAM modules, with Debian's hardening flags for pam_flux.so.
# build/flux-pam is packaged as it is (`make deb` brought it up to date): never rebuilt here.
[ -x build/flux-pam ] || die "build/flux-pam is missing: run make deb (or make build/flux-pam)"
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
"$MAKE" --no-print-directory -o build/flux-pam install DESTDIR="$PWD/$root" PREFIX=/usr BINDIR=/usr/bin \
  LIBEXECDIR=/usr/libexec SECUREDIR="$securedir" \
  TMPFILESDIR=/usr/lib/tmpfiles.d MANDIR=/usr/share/man \
  CFLAGS="$(dpkg-buildflags --get CFLAGS)" CPPFLAGS="$(dpkg-buildflags --get CPPFLAGS)" \
  LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"

# Policy 10.1: shared objects stripped. The Bun executable is NOT stripped: its program lives
# in the .bun ELF section, and a stripped copy is the bare Bun runtime (packaging/LINTIAN.md).
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$root$securedir/pam_flux.so"
# Policy 12.1 / 12.7: compressed man pages, copyright and changelog in the doc directory.
gzip -9n "$root"/usr/share/man/man?/*
install -d -m 0755 "$root/usr/share/doc/flux-pam" "$root/usr/share/lintian/overrides"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/flux-pam/copyright"
gzip -9nc "$changelog" > "$root/usr/share/doc/flux-pam/changelog.gz"
chmod 0644 "$root/usr/share/doc/flux-pam/changelog.gz"
install -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/flux-pam"

# Depends from the ELF files themselves, as dh_shlibdeps would.
printf 'Source: flux-pam\n\nPackage: flux-pam\nArchitecture: any\n' > "$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O \
  "-edebian/flux-pam/usr/libexec/flux-pam/flux-pam" "-edebian/flux-pam$securedir/pam_flux.so" 2>shlibdeps.log |
  sed -n 's/^shlibs:Depends=//p') || die "dpkg-shlibdeps failed: $(cat "$work/shlibdeps.log")"
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies"

# Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up, and 1 per other entry.
installed_size=$(find "$root" -mindepth 1 \( -type f -printf '%s\n' \) -o -printf '1024\n' |
  awk '{ kib += int(($1 + 1023) / 1024) } END { print kib }')

install -d -m 0755 "$root/DEBIAN"
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
  -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@DEPENDS@|$depends|" \
  packaging/debian/control > "$root/DEBIAN/control"
install -m 0755 packaging/debian/postinst "$root/DEBIAN/postinst"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
