#!/usr/bin/env bash
# Installs the Debian packages and Go tools that amtd's build, tests and demo
# need, so `make test` and `make demo` work on a fresh Debian 12 machine with Go.
# It only installs what is missing. Run as root (CI does); as another user it
# says what to install and continues (root-only tests then skip, saying why).
set -euo pipefail

# Real peers the tests run against (see README "Tests"):
#   isc-dhcp-client, udhcpc  DHCP clients          bind9, bind9-dnsutils  named, dig, nsupdate
#   dnsmasq-base             DHCP/DNS peer for benchmarks (the binary, no system service)
#   dnsperf                  DNS load generator    iproute2  network namespaces and veth
#   openssl                  certificate checks    man-db, groff  man page rendering checks
#   gcc, libc6-dev           cgo for go-sqlite3    systemd  systemd-analyze, systemd-socket-activate
#   lintian, dpkg-dev, bash-completion  checks of the .deb (tests/deb)
#   curl                     the demo's console calls to the API
#   mmdebstrap, systemd-container  build the appliance image and boot it with systemd-nspawn (tests/image)
#   dosfstools, mtools, fdisk, systemd-boot-efi, qemu-system-x86, ovmf  its bootable disk, booted under qemu
packages=(gcc libc6-dev isc-dhcp-client udhcpc bind9 bind9-dnsutils dnsmasq-base dnsperf iproute2 openssl
	man-db groff systemd procps psmisc lintian dpkg-dev bash-completion mmdebstrap systemd-container
	dosfstools mtools fdisk systemd-boot-efi qemu-system-x86 ovmf curl)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
	else
		echo "deps: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		# Do not let package installs start system services (bind9 would take port 53).
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
			trap 'rm -f /usr/sbin/policy-rc.d' EXIT
		fi
		for i in 1 2 3; do
			apt-get update -qq -o DPkg::Lock::Timeout=300 && break || sleep 5
		done
		apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi

# staticcheck for `make lint`, pinned: 2026.2.2 is module version v0.8.2 (the
# proxy answers only the module version, not the release name).
gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/staticcheck" ]; then
	echo "deps: installing staticcheck"
	GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
