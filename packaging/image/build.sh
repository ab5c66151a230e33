#!/usr/bin/env bash
# Builds the amtd appliance image for one site: Debian 12 (bookworm), minimal
# with systemd, the amtd .deb, the rootfs overlay and an amtd.conf made for the
# site's domain. `make image DOMAIN=...` runs it; tests/image boots the result
# under systemd-nspawn.
#
# Usage: packaging/image/build.sh --domain DOMAIN [OPTIONS]
#
#   --domain D       the site's DNS domain (required): ProvisionServer.D and
#                    DHCP option 15
#   --address A/N    the appliance's address and prefix on the client network
#                    (default 192.168.100.2/24); DHCP leases are served on
#                    that subnet
#   --router R       the network's router: DHCP option 3, the default route
#                    and the DNS forwarder (default: the subnet's .1; "none"
#                    for an isolated network)
#   --range S-E      the addresses leased (default: .100-.199 of the subnet)
#   --interface IF   the interface the appliance serves (default: the first
#                    Ethernet interface, en* or eth*)
#   --pfx FILE       a provisioning certificate (.pfx) for the domain, baked
#                    in and sealed into the store on first boot, then deleted;
#                    its password is read from --pfx-password-file
#   --pfx-password-file FILE   the .pfx password (one line)
#   --deb FILE       the amtd .deb to install (default: build one with
#                    packaging/deb/build.sh)
#   --out DIR        where the image goes (default: dist):
#                    amtd-image-DOMAIN.tar and, when mksquashfs is installed,
#                    amtd-image-DOMAIN.squashfs
#   --cache DIR      keep the Debian base tarball there between builds
#                    (default: none, every build runs mmdebstrap)
#   --mirror M       a Debian mirror URL or a sources file (default: the
#                    Debian sources this machine's apt uses)
#   --root-password-file FILE  root's password for the console login (first
#                    line; stored hashed, SHA-512 crypt). Without it root is
#                    locked and nobody can log in on the console. The hash
#                    has a random salt: such images differ between builds
#   --no-squashfs    make the tarball only (the squashfs takes a minute or
#                    more on two cores)
#   --disk           also make amtd-image-DOMAIN.img, a bootable UEFI disk:
#                    GPT with an EFI system partition (systemd-boot, the
#                    kernel and initrd of linux-image-amd64, installed in the
#                    root for it) and the ext4 root, console on ttyS0. Write
#                    it to the box's disk (dd) or boot it under qemu with
#                    OVMF; the root partition is as large as the tree plus
#                    --disk-free MiB (default 1024)
#   --disk-free MIB  free space left on the root partition
#
# The master key of the credential store is never made here: the .deb is
# unpacked, not configured, and amtd-firstboot.service configures it on the
# appliance's first boot, when the package's postinst generates the key and
# seals it to that machine (systemd-creds: its TPM2 and/or host key).
#
# The build is reproducible where that is cheap: SOURCE_DATE_EPOCH (default:
# the last commit's time) stands in for every timestamp, and the same base
# (same mirror snapshot) and .deb give the same tarball. The disk's partition,
# file system and volume IDs come from the domain and SOURCE_DATE_EPOCH and
# its files are dated SOURCE_DATE_EPOCH, but two .img files still differ in
# a few bytes: mkfs.ext4 -d (e2fsprogs 1.47.0) copies the tree's change
# times, and mtools dates the ESP's "." and ".." entries with the clock.
#
# Trying an image (as root; nspawn needs --system-call-filter=@memlock, as
# amtd mlocks the store's key, and --register=no where PID 1 is not systemd):
#   mkdir root && tar -C root --numeric-owner -xpf dist/amtd-image-D.tar
#   systemd-nspawn --boot -D root --network-veth --system-call-filter=@memlock
# for an image built with --interface host0, so that the site address is
# on the container's end of the veth. The squashfs boots read-only, its
# state thrown away at power-off:
#   mount -o loop,ro dist/amtd-image-D.squashfs mnt
#   systemd-nspawn --boot -D mnt --volatile=overlay ...
#
# How long it takes on two cores: about 2.5-3 min from nothing (mmdebstrap 70-150
# s, the .deb 20 s, the squashfs 40 s); 20-50 s with a cached base and
# --no-squashfs. Booted under systemd-nspawn, the first boot reaches
# amtd.service active in about 15 s (the first-boot unit 7 s of it: dpkg
# --configure, the key, the store), a reboot in about as long (networkd's
# wait-online is most of it). tests/image prints these figures.
# --disk adds about 15 s, and the first mmdebstrap with the kernel takes 3.5
# min; the disk boots under qemu with OVMF, software-emulated (no KVM), to
# the console summary with amtd.service active in about 50 s.
#
# Needs: root, mmdebstrap, dpkg, tar; mksquashfs (squashfs-tools) for the
# squashfs; go and dpkg-dev to build the .deb; for --disk mkfs.vfat
# (dosfstools), mtools, mkfs.ext4 (e2fsprogs), sfdisk (fdisk) and
# systemd-boot's EFI binary (systemd-boot-efi). No loop device or mount is
# used: each file system is made in a file and copied into the disk.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$top/packaging/image
out=$top/dist
domain= address=192.168.100.2/24 router= range= iface= pfx= pfxpass= deb= cache= mirror= squashfs=yes rootpw= disk=no diskfree=1024

while (($#)); do
	case $1 in
	--domain) domain=$2; shift 2 ;;
	--address) address=$2; shift 2 ;;
	--router) router=$2; shift 2 ;;
	--range) range=$2; shift 2 ;;
	--interface) iface=$2; shift 2 ;;
	--pfx) pfx=$2; shift 2 ;;
	--pfx-password-file) pfxpass=$2; shift 2 ;;
	--deb) deb=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--mirror) mirror=$2; shift 2 ;;
	--no-squashfs) squashfs=no; shift ;;
	--disk) disk=yes; shift ;;
	--disk-free) diskfree=$2; shift 2 ;;
	--root-password-file) rootpw=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

die() { echo "image: $*" >&2; exit 1; }
[ -n "$domain" ] || die "--domain is required (make image DOMAIN=site.example.com)"
[[ $domain =~ ^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$ ]] ||
	die "domain $domain is not a DNS name like site.example.com"
if [ -n "$pfx" ]; then
	[ -f "$pfx" ] || die "--pfx $pfx: no such file"
	[ -n "$pfxpass" ] && [ -f "$pfxpass" ] || die "--pfx needs --pfx-password-file FILE (the .pfx password, one line)"
fi

# The site's addresses: the appliance's A/N, its subnet, the router and the
# lease range, each checked to lie where it must.
ip2int() {
	local IFS=. a b c d
	read -r a b c d <<<"$1"
	for o in "$a" "$b" "$c" "$d"; do
		[[ $o =~ ^[0-9]{1,3}$ ]] && ((o <= 255)) || return 1
	done
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
int2ip() { echo "$(($1 >> 24 & 255)).$(($1 >> 16 & 255)).$(($1 >> 8 & 255)).$(($1 & 255))"; }
[[ $address =~ ^([0-9.]+)/([0-9]+)$ ]] || die "--address $address is not ADDRESS/PREFIX like 192.168.100.2/24"
addr=${BASH_REMATCH[1]} plen=${BASH_REMATCH[2]}
a=$(ip2int "$addr") || die "--address $address: $addr is not an IPv4 address"
((plen >= 8 && plen <= 30)) || die "--address $address: the prefix must be /8 to /30"
mask=$(((0xffffffff << (32 - plen)) & 0xffffffff))
net=$((a & mask)) bcast=$(((a & mask) | (~mask & 0xffffffff)))
subnet=$(int2ip $net)/$plen
inside() { (($1 > net && $1 < bcast)); }
inside "$a" || die "--address $address is the network or broadcast address"
if [ -z "$router" ]; then
	router=$(int2ip $((net + 1)))
	[ "$router" != "$addr" ] || router=none
fi
if [ "$router" != none ]; then
	r=$(ip2int "$router") && inside "$r" || die "--router $router is not an address in $subnet"
fi
if [ -z "$range" ]; then
	((bcast - net > 199)) || die "the subnet $subnet is small: give the lease range with --range START-END"
	range=$(int2ip $((net + 100)))-$(int2ip $((net + 199)))
fi
[[ $range =~ ^([0-9.]+)-([0-9.]+)$ ]] || die "--range $range is not START-END"
s=$(ip2int "${BASH_REMATCH[1]}") && e=$(ip2int "${BASH_REMATCH[2]}") && inside "$s" && inside "$e" && ((s <= e)) ||
	die "--range $range is not a range of addresses in $subnet"
((a < s || a > e)) || die "--range $range holds the appliance's own address $addr"
[ -z "$iface" ] || [[ $iface =~ ^[A-Za-z0-9_.:-]{1,15}$ ]] || die "--interface $iface is not an interface name"
if [ -n "$rootpw" ]; then
	[ -f "$rootpw" ] || die "--root-password-file $rootpw: no such file"
	command -v openssl >/dev/null || die "openssl not found: it hashes the root password"
fi

[[ $diskfree =~ ^[0-9]{1,7}$ ]] || die "--disk-free $diskfree is not a size in MiB"
sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
if [ $disk = yes ]; then
	for tool in mkfs.vfat mmd mcopy mkfs.ext4 sfdisk; do
		command -v "$tool" >/dev/null || die "$tool not found: --disk needs dosfstools, mtools, e2fsprogs and fdisk"
	done
	[ -f "$sdboot" ] || die "$sdboot not found: --disk needs systemd-boot's EFI binary (apt-get install systemd-boot-efi)"
fi

[ "$(id -u)" -eq 0 ] || die "building the image needs root (it unpacks a Debian system with its owners)"
for tool in mmdebstrap dpkg tar; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install mmdebstrap)"
done

: "${SOURCE_DATE_EPOCH:=$(git -C "$top" log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/amtd-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022
t0=$SECONDS

# The .deb, and bin/amtd of the same source to check the configuration with.
if [ -z "$deb" ]; then
	deb=$("$top/packaging/deb/build.sh" --out "$out") || die "building the .deb failed"
fi
[ -f "$deb" ] || die "--deb $deb: no such file"
tdeb=$SECONDS
checker=$work/amtd
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/sbin/amtd >"$checker"
chmod 0755 "$checker"

# The configuration for this site, checked with the amtd that will run it.
conf=$work/amtd.conf
{
	cat <<-EOF
		# amtd.conf for the appliance of $domain, written by packaging/image/build.sh.
		# Every key is described in amtd.conf(5); check changes with
		#   amtd check-config
		# and apply them with: systemctl reload amtd

		[Site]
		Domain=$domain
		Address=$addr

		[DNS]
		Enable=yes
	EOF
	[ "$router" = none ] || echo "Upstream=$router"
	printf '\n[DHCP]\nEnable=yes\n'
	[ -z "$iface" ] || echo "Interface=$iface"
	printf '\n[DHCPPool]\nSubnet=%s\nRange=%s\n' "$subnet" "$range"
	[ "$router" = none ] || echo "Router=$router"
	printf '\n[Provisioning]\nEnable=yes\n\n[CIRA]\nEnable=yes\n'
} >"$conf"
"$checker" check-config -c "$conf" || die "the generated amtd.conf is not valid (above); the options given do not make a working site"

# The Debian base: minimal (apt) with systemd as init, the packages amtd
# depends on, and networkd for the static address. Cached by what makes it.
if [ -z "$mirror" ]; then
	mirror=http://deb.debian.org/debian
	for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
		if [ -f "$f" ] && grep -q '^[^#]*bookworm' "$f"; then mirror=$f; break; fi
	done
fi
packages=systemd,systemd-sysv,dbus,adduser,iproute2,libc6
# A disk boots its own kernel: Debian's, with an initramfs (ext4 and the disk
# drivers are modules).
[ $disk = no ] || packages+=,linux-image-amd64,initramfs-tools
base_args=(--variant=apt --include="$packages" --mode=root --format=tar bookworm)
key=$({ printf '%s\n' "${base_args[@]}" "$(mmdebstrap --version)"; if [ -f "$mirror" ]; then cat "$mirror"; else echo "$mirror"; fi; } |
	sha256sum | cut -c1-16)
base=
if [ -n "$cache" ]; then
	mkdir -p "$cache"
	base=$cache/bookworm-base-$key.tar
	# A week-old base misses security updates: build it again.
	[ ! -f "$base" ] || [ -n "$(find "$base" -mtime -7)" ] || rm -f "$base"
fi
if [ -z "$base" ] || [ ! -f "$base" ]; then
	target=${base:-$work/base.tar}
	echo "image: mmdebstrap bookworm from $mirror" >&2
	# A name of its own until done: two builds may share the cache.
	mmdebstrap --quiet "${base_args[@]}" "$target.$$.part" "$mirror" || { rm -f "$target.$$.part"; die "mmdebstrap failed"; }
	mv "$target.$$.part" "$target"
	base=$target
	# Bases of other package lists or mirrors, unused for a week, go.
	[ -z "$cache" ] || find "$cache" -maxdepth 1 -name 'bookworm-base-*.tar' ! -name "${base##*/}" -mtime +7 -delete
fi
tbase=$SECONDS

# The root: the base, the .deb unpacked (not configured: see above), the
# overlay and the site's configuration.
root=$work/root
mkdir "$root"
tar -C "$root" --numeric-owner -xpf "$base"
cp "$deb" "$root/tmp/amtd.deb"
logsize=$(stat -c %s "$root/var/log/dpkg.log" 2>/dev/null || echo 0)
chroot "$root" dpkg --unpack /tmp/amtd.deb >/dev/null || die "dpkg --unpack of $deb failed"
# dpkg's log of the unpack, dated SOURCE_DATE_EPOCH like everything else.
if [ -f "$root/var/log/dpkg.log" ]; then
	when=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%F %T')
	{ head -c "$logsize" "$root/var/log/dpkg.log"; tail -c +"$((logsize + 1))" "$root/var/log/dpkg.log" |
		sed -E "s/^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}/$when/"; } >"$work/dpkg.log"
	cat "$work/dpkg.log" >"$root/var/log/dpkg.log"
fi
rm -f "$root/tmp/amtd.deb"
# The package's conffile waits as amtd.conf.dpkg-new until it is configured;
# the site's amtd.conf is the one kept then (dpkg --force-confold).
install -m 0640 "$conf" "$root/etc/amtd/amtd.conf"

install -d "$root/usr/lib/amtd-image"
install -d -m 0700 "$root/var/lib/amtd-image"
install -m 0755 "$here/firstboot" "$here/banner" "$root/usr/lib/amtd-image/"
install -m 0644 "$here/amtd-firstboot.service" "$here/amtd-banner.service" "$root/usr/lib/systemd/system/"
touch "$root/var/lib/amtd-image/firstboot-pending"
if [ -n "$pfx" ]; then
	install -m 0600 "$pfx" "$root/var/lib/amtd-image/domain.pfx"
	install -m 0600 "$pfxpass" "$root/var/lib/amtd-image/domain.pfx.password"
fi
printf 'domain=%s\naddress=%s\n' "$domain" "$address" >"$root/usr/lib/amtd-image/site"

# The network: the appliance's static address on the served interface, with
# systemd-networkd (part of systemd).
cat >"$root/etc/systemd/network/50-amtd-site.network" <<EOF
# The client network of $domain (packaging/image/build.sh).
[Match]
Name=${iface:-en* eth*}

[Network]
Address=$address
EOF
[ "$router" = none ] || echo "Gateway=$router" >>"$root/etc/systemd/network/50-amtd-site.network"
# amtd.service starts after network-online.target: with wait-online, once the
# address is configured.
for u in systemd-networkd.service:multi-user.target systemd-networkd-wait-online.service:network-online.target \
	amtd-firstboot.service:multi-user.target amtd-banner.service:multi-user.target; do
	mkdir -p "$root/etc/systemd/system/${u#*:}.wants"
	ln -sf "/usr/lib/systemd/system/${u%:*}" "$root/etc/systemd/system/${u#*:}.wants/${u%:*}"
done
# networkd's sockets, which it needs when it starts from the wants above.
mkdir -p "$root/etc/systemd/system/sockets.target.wants"
ln -sf /usr/lib/systemd/system/systemd-networkd.socket "$root/etc/systemd/system/sockets.target.wants/"
if [ -n "$rootpw" ]; then
	hash=$(head -n1 "$rootpw" | tr -d '\n' | openssl passwd -6 -stdin) || die "hashing the root password failed"
	echo "root:$hash" | chroot "$root" chpasswd -e
else
	echo "image: root is locked: nobody can log in on the appliance's console (give --root-password-file)" >&2
fi
echo amtd >"$root/etc/hostname"
# Names: its own, and amtd's DNS as the appliance's resolver (it answers the
# site's names and forwards the rest to the router), not the build host's.
printf '127.0.0.1\tlocalhost\n127.0.1.1\tamtd.%s amtd\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$domain" >"$root/etc/hosts"
printf 'search %s\nnameserver 127.0.0.1\n' "$domain" >"$root/etc/resolv.conf"
# Each appliance gets its own machine ID on its first boot.
: >"$root/etc/machine-id"

# The image: a tarball sorted, owned by numbers and dated SOURCE_DATE_EPOCH,
# and a squashfs of the same tree.
mkdir -p "$out"
img=$out/amtd-image-$domain
tar -C "$root" --sort=name --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	--xattrs --xattrs-include='security.capability' -cf "$img.tar.part" .
mv "$img.tar.part" "$img.tar"
echo "$img.tar"
if [ $squashfs = yes ] && command -v mksquashfs >/dev/null; then
	rm -f "$img.squashfs"
	# mksquashfs dates the image and every file SOURCE_DATE_EPOCH itself.
	mksquashfs "$root" "$img.squashfs" -quiet -no-progress -comp zstd >/dev/null
	echo "$img.squashfs"
fi
if [ $disk = yes ]; then
	# The bootable disk, made without a loop device or a mount: the ESP
	# (FAT32) and the root (ext4 from the tree) are each made in a file,
	# then copied into a file laid out with sfdisk. Its IDs are derived from
	# the domain and SOURCE_DATE_EPOCH, so the same inputs give the same
	# IDs.
	rm -f "$img.img" "$img.img.part"
	hexid() { printf '%s' "amtd-image $domain $SOURCE_DATE_EPOCH $1" | sha256sum | cut -c1-32; }
	uuid() { local h; h=$(hexid "$1"); echo "${h:0:8}-${h:8:4}-4${h:13:3}-a${h:17:3}-${h:20:12}"; }
	diskid=$(uuid disk) espid=$(uuid esp) rootid=$(uuid root) fsid=$(uuid rootfs) volid=$(hexid volume | cut -c1-8)
	kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
	initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
	[ -f "$kernel" ] && [ -f "$initrd" ] || die "no kernel and initrd in the root's /boot (linux-image-amd64 did not install)"
	esp=$work/esp.img rootfs=$work/root.img
	mkdir -p "$work/esp/EFI/BOOT" "$work/esp/loader/entries"
	cp "$sdboot" "$work/esp/EFI/BOOT/BOOTX64.EFI"
	cp "$kernel" "$work/esp/vmlinuz"
	cp "$initrd" "$work/esp/initrd.img"
	printf 'default amtd.conf\ntimeout 0\n' >"$work/esp/loader/loader.conf"
	# console=ttyS0 last: the kernel's and systemd's /dev/console is the
	# serial port, where the summary is printed; tty0 shows the kernel's
	# messages on a screen too.
	cat >"$work/esp/loader/entries/amtd.conf" <<-EOF
		title amtd appliance for $domain
		linux /vmlinuz
		initrd /initrd.img
		options root=PARTUUID=$rootid rw console=tty0 console=ttyS0,115200 quiet
	EOF
	find "$work/esp" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	# The ESP: its contents and room to spare, 64 MiB at least (FAT32).
	espmib=$(( ($(du -sm --apparent-size "$work/esp" | cut -f1) * 5 / 4 + 16 + 63) / 64 * 64 ))
	mkfs.vfat -C -F 32 -n ESP -i "$volid" "$esp" $((espmib * 1024)) >/dev/null
	MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
	(cd "$work/esp" && find . -type f | sort | while read -r f; do
		MTOOLS_SKIP_CHECK=1 mcopy -m -i "$esp" "$f" "::/${f#./}"
	done)
	# The root: the tree with every time clamped to SOURCE_DATE_EPOCH, and
	# --disk-free MiB to spare.
	find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	rootmib=$(( ($(du -sm --apparent-size "$root" | cut -f1) * 6 / 5 + diskfree + 63) / 64 * 64 ))
	E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L amtd-root -U "$fsid" \
		-E "root_owner=0:0,hash_seed=$fsid,lazy_itable_init=0" -d "$root" "$rootfs" "${rootmib}M" >/dev/null ||
		die "mkfs.ext4 of the root failed"
	# GPT: 1 MiB before the first partition, the backup table after the last.
	truncate -s $(( (1 + espmib + rootmib + 1) * 1024 * 1024 )) "$img.img.part"
	sfdisk --quiet --no-reread --no-tell-kernel "$img.img.part" <<-EOF || die "sfdisk failed"
		label: gpt
		label-id: $diskid
		unit: sectors
		start=2048, size=$((espmib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$espid, name="ESP"
		start=$(( (1 + espmib) * 2048 )), size=$((rootmib * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$rootid, name="amtd-root"
	EOF
	dd if="$esp" of="$img.img.part" bs=1M seek=1 conv=notrunc,sparse status=none
	dd if="$rootfs" of="$img.img.part" bs=1M seek=$((1 + espmib)) conv=notrunc,sparse status=none
	mv "$img.img.part" "$img.img"
	echo "$img.img"
fi
echo "image: built in $((SECONDS - t0)) s (.deb $((tdeb - t0)) s, Debian base $((tbase - tdeb)) s, the rest $((SECONDS - tbase)) s)" >&2
