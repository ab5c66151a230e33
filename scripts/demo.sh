#!/usr/bin/env bash
# make demo: a development site in a temporary directory. amtd starts from a
# generated configuration, becomes READY, reports its status, reloads, and
# stops cleanly on SIGTERM. The Makefile builds bin/amtd first; this script
# builds nothing. Works as root on a fresh Debian 12 (the config sets
# AllowRoot=yes, which the packaged unit never needs: it runs as User=amtd).
set -euo pipefail
cd "$(dirname "$0")/.."
AMTD=${AMTD:-$PWD/bin/amtd}
if [ ! -x "$AMTD" ]; then
	echo "demo: $AMTD is missing; run 'make demo' (it builds it) or 'make build'" >&2
	exit 1
fi

dir=$(mktemp -d /tmp/amtd-demo.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT

# Development ports: the standard ones + 10000, all on 127.0.0.1.
cat >"$dir/amtd.conf" <<CONF
# amtd development configuration written by scripts/demo.sh. Not for
# production: the master key is a plain file and everything is on 127.0.0.1.
[Site]
Domain=demo.amtd.test
Address=127.0.0.1
AllowRoot=yes

[Store]
Path=$dir/amtd.db
KeyFile=$dir/master.key
BackupDir=$dir/backup

[Log]
Level=info
Format=text

[Control]
Socket=$dir/control.sock

[DHCP]
Enable=yes
Listen=127.0.0.1:10067

[DHCPPool]
Subnet=127.0.0.0/24
Range=127.0.0.100-127.0.0.200

[DNS]
Enable=yes
Listen=127.0.0.1:10053
CONF

echo "== demo site in $dir"
"$AMTD" store init --generate-key -c "$dir/amtd.conf"

echo "== starting amtd"
"$AMTD" run -c "$dir/amtd.conf" 2>"$dir/amtd.log" &
pid=$!

# READY: poll `amtd status` until the daemon answers (it answers only once
# every service listens), or give up after 20 s.
for _ in $(seq 1 200); do
	if "$AMTD" status -c "$dir/amtd.conf" >/dev/null 2>&1; then break; fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "demo: amtd exited during start-up:" >&2
		cat "$dir/amtd.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "== amtd status"
"$AMTD" status -c "$dir/amtd.conf"

echo
echo "== a device in Setup Mode looks up ProvisionServer.demo.amtd.test (spec/network.md §2)"
if command -v dig >/dev/null; then
	answer=$(dig +short +time=2 +tries=1 -p 10053 @127.0.0.1 ProvisionServer.demo.amtd.test A)
	echo "dig ProvisionServer.demo.amtd.test A -> ${answer:-nothing}"
	if [ "$answer" != 127.0.0.1 ]; then
		echo "demo: FAILED: ProvisionServer did not resolve to the appliance (127.0.0.1)" >&2
		cat "$dir/amtd.log" >&2
		exit 1
	fi
else
	echo "(dig not installed: run 'make deps' as root)"
fi

echo
echo "== reload (SIGHUP)"
kill -HUP "$pid"
for _ in $(seq 1 50); do
	if "$AMTD" status --json -c "$dir/amtd.conf" 2>/dev/null | grep -q '"last_reload"'; then break; fi
	sleep 0.1
done
"$AMTD" status -c "$dir/amtd.conf" | grep 'last reload'

echo
echo "== stopping amtd (SIGTERM)"
kill -TERM "$pid"
set +e
wait "$pid"
code=$?
set -e
pid=
echo "== amtd log"
cat "$dir/amtd.log"
if [ "$code" -ne 0 ]; then
	echo "demo: FAILED: amtd exited with $code after SIGTERM, want 0" >&2
	exit 1
fi
echo "demo: ok (amtd exited 0)"
