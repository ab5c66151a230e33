#!/usr/bin/env bash
# Builds the Debian package of amtd from a staging tree with dpkg-deb: no
# debhelper, no Docker. `make deb` runs it; tests/deb checks the result with
# lintian, installs, upgrades, removes and purges it, and builds it twice to
# compare the bytes.
#
# Usage: packaging/deb/build.sh [--out DIR] [--version DEBIAN-VERSION]
#
#   --out DIR        where amtd_VERSION_ARCH.deb goes (default: dist)
#   --version V      the Debian version (default: from `git describe`, as
#                    packaging/deb/version.sh maps it).
#                    The tests build two versions to test an upgrade.
#
# The build is reproducible (https://reproducible-builds.org): the same commit
# gives the same .deb, byte for byte, whatever the build directory, the umask
# or the time of day. SOURCE_DATE_EPOCH (default: the last commit's time)
# stands in for every timestamp.
#
# Needs: go (with cgo: gcc, libc6-dev), dpkg-dev (dpkg-shlibdeps,
# dpkg-buildflags), git.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$top/packaging/deb
out=$top/dist
version=

while (($#)); do
	case $1 in
	--out) out=$2; shift 2 ;;
	--version) version=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

die() { echo "build.sh: $*" >&2; exit 1; }
for tool in go git dpkg-deb dpkg-shlibdeps dpkg-buildflags; do
	command -v "$tool" >/dev/null || die "$tool not found (install golang, git and dpkg-dev)"
done

cd "$top"

if [ -z "$version" ]; then
	version=$("$here/version.sh" "$here/changelog") || die "cannot make a Debian version from git describe"
fi
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$ ]] ||
	die "version $version is not a Debian version UPSTREAM-REVISION (digits first; letters, digits, . + ~)"

: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH

arch=$(dpkg --print-architecture)
goarch=$(go env GOARCH)
case $arch:$goarch in
amd64:amd64 | arm64:arm64 | i386:386 | armhf:arm | ppc64el:ppc64le | s390x:s390x | riscv64:riscv64) ;;
*) die "Debian architecture $arch does not match Go's GOARCH $goarch: build on the target architecture" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/amtd-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
# Modes are set explicitly below; a umask of 077 or 002 at the caller must
# not leak into the package.
umask 022

# The binary: -trimpath and no VCS stamp so the bytes depend on the source
# only; PIE and the distribution's hardening flags for the C part (SQLite)
# and the external link, as dpkg-buildflags gives them to every Debian
# package (lintian's hardening checks); stripped (-s -w, then strip as
# dh_strip does, dropping .comment and .note sections).
export CGO_ENABLED=1
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CGO_CPPFLAGS=$(dpkg-buildflags --get CPPFLAGS)
CGO_CFLAGS=$(dpkg-buildflags --get CFLAGS)
CGO_LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CGO_CPPFLAGS CGO_CFLAGS CGO_LDFLAGS
mkdir -p "$work/bin"
go build -trimpath -buildvcs=false -buildmode=pie \
	-ldflags "-s -w -X main.version=$version" \
	-o "$work/bin/amtd" ./cmd/amtd
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$work/bin/amtd"

install -d "$root/DEBIAN" "$root/usr/sbin" "$root/etc/amtd" \
	"$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
	"$root/usr/share/man/man5" "$root/usr/share/man/man8" "$root/usr/share/doc/amtd" \
	"$root/usr/share/bash-completion/completions" "$root/usr/share/lintian/overrides"

install -m 0755 "$work/bin/amtd" "$root/usr/sbin/amtd"
install -m 0644 amtd.conf "$root/etc/amtd/amtd.conf"
install -m 0644 rootfs/usr/lib/systemd/system/amtd.service rootfs/usr/lib/systemd/system/amtd-*.socket \
	"$root/usr/lib/systemd/system/"
install -m 0644 rootfs/usr/lib/sysusers.d/amtd.conf "$root/usr/lib/sysusers.d/amtd.conf"
install -m 0644 rootfs/usr/lib/tmpfiles.d/amtd.conf "$root/usr/lib/tmpfiles.d/amtd.conf"
gzip -9n <man/amtd.8 >"$root/usr/share/man/man8/amtd.8.gz"
gzip -9n <man/amtd.conf.5 >"$root/usr/share/man/man5/amtd.conf.5.gz"
install -m 0644 packaging/bash-completion/amtd "$root/usr/share/bash-completion/completions/amtd"
install -m 0644 "$here/copyright" "$root/usr/share/doc/amtd/copyright"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/amtd"

# The changelog: the committed history, headed by an entry for this build's
# version when it is not a released one (a snapshot between tags).
{
	if ! head -n1 "$here/changelog" | grep -qF "amtd ($version) "; then
		printf 'amtd (%s) unstable; urgency=medium\n\n  * Snapshot build between releases.\n\n -- %s  %s\n\n' \
			"$version" \
			"$(sed -n 's/^Maintainer: //p' "$here/control")" \
			"$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" '+%a, %d %b %Y %H:%M:%S +0000')"
	fi
	cat "$here/changelog"
} | gzip -9n >"$root/usr/share/doc/amtd/changelog.Debian.gz"

for s in preinst postinst prerm postrm; do
	install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done
install -m 0644 "$here/conffiles" "$root/DEBIAN/conffiles"

# Depends: the shared libraries the binary links (libc6 only: SQLite is
# compiled in by go-sqlite3), computed by dpkg-shlibdeps from the symbols it
# uses, as ${shlibs:Depends} is for any Debian package. dpkg-shlibdeps wants a
# debian/control beside it.
mkdir -p "$work/debian"
printf 'Source: amtd\n\nPackage: amtd\nArchitecture: any\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O -e root/usr/sbin/amtd 2>"$work/shlibdeps.err") ||
	{ cat "$work/shlibdeps.err" >&2; die "dpkg-shlibdeps failed"; }
shlibs=${shlibs#shlibs:Depends=}
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependencies for a cgo binary"

# Installed-Size in KiB, as dpkg-gencontrol counts it: each file rounded up
# to a whole KiB, plus one per directory and symlink.
size=$(cd "$root" && find . -path ./DEBIAN -prune -o \( -type f -printf '%s\n' -o -printf '1024\n' \) |
	awk '{ kib += int(($1 + 1023) / 1024) } END { print kib }')

sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SHLIBS@/$shlibs/" -e "s/@SIZE@/$size/" \
	"$here/control" >"$root/DEBIAN/control"

# md5sums of every file but the conffiles (dpkg records those itself), as
# dh_md5sums writes it.
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
	LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

# Directories 0755, every mtime the source date (dpkg-deb also clamps to
# SOURCE_DATE_EPOCH; setting them all makes the checkout's mtimes irrelevant).
find "$root" -type d -exec chmod 0755 {} +
find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/amtd_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
