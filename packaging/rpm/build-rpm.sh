#!/usr/bin/env bash
# Builds build/rpm/RPMS/ARCH/flux-pam-VERSION-1.ARCH.rpm with rpmbuild (`make rpm` runs this):
# a source tarball of this tree carrying the build/flux-pam built here, then
# `rpmbuild -bb --with prebuilt`, so rpmbuild itself needs no npm.
# Environment: RPM_PAYLOAD overrides the payload compression (default w6.gzdio: fast, and
# readable by every rpm in the RHEL family).
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "build-rpm: $*" >&2; exit 1; }
spec=packaging/rpm/flux-pam.spec
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' package.json | head -n 1)
spec_version=$(rpmspec -q --srpm --qf '%{version}' "$spec")
[ "$spec_version" = "$version" ] || die "$spec is at $spec_version, package.json at $version"
[ -x build/flux-pam ] || die "build/flux-pam is missing: run make build/flux-pam first"

top=$PWD/build/rpm
rm -rf "$top"
mkdir -p "$top/SOURCES" "$top/stage/flux-pam-$version/build"
cp -a Makefile package.json package-lock.json tsconfig.json bunfig.toml README.md src pam man packaging \
  "$top/stage/flux-pam-$version/"
cp -a build/flux-pam build/bytecode-order build/compile.ts build/setup.sh "$top/stage/flux-pam-$version/build/"
tar -C "$top/stage" -czf "$top/SOURCES/flux-pam-$version.tar.gz" "flux-pam-$version"
rm -rf "$top/stage"

# On a host whose packages are not in the rpm database (Debian), BuildRequires cannot be checked.
nodeps=()
rpm -q rpm >/dev/null 2>&1 || nodeps=(--nodeps)
rpmbuild -bb --with prebuilt "${nodeps[@]}" --define "_topdir $top" \
  --define "_binary_payload ${RPM_PAYLOAD:-w6.gzdio}" "$spec" >"$top/rpmbuild.log" 2>&1 ||
  die "rpmbuild failed, see $top/rpmbuild.log: $(tail -n 5 "$top/rpmbuild.log")"
find "$top/RPMS" -name "flux-pam-$version-*.rpm"
