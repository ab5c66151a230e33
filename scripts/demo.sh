#!/usr/bin/env bash
# make demo: a simulated site in a temporary directory. amtd starts from a
# generated configuration with DNS and provisioning; the site's provisioning
# certificate is added with `amtd domain add`; simulated AMT devices in Setup
# Mode (amtsim) look up ProvisionServer through amtd's DNS, send their hellos,
# and are activated in admin control mode with KVM, SOL and IDER on; `amtd
# devices` lists them; a console API key does a power action over CIRA with
# curl and a KVM session through the redirection relay (tests/tools/
# relayclient, which never holds the AMT password); amtd reloads and stops
# cleanly on SIGTERM. The Makefile builds bin/amtd and bin/amtsim first;
# this script builds only the relay client (a console, not part of amtd). Works as root on a fresh
# Debian 12 (the config sets AllowRoot=yes, which the packaged unit never
# needs: it runs as User=amtd). DEVICES sets the fleet size (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
AMTD=${AMTD:-$PWD/bin/amtd}
AMTSIM=${AMTSIM:-$PWD/bin/amtsim}
DEVICES=${DEVICES:-5}
for b in "$AMTD" "$AMTSIM"; do
	if [ ! -x "$b" ]; then
		echo "demo: $b is missing; run 'make demo' (it builds it) or 'make build'" >&2
		exit 1
	fi
done

dir=$(mktemp -d /tmp/amtd-demo.XXXXXX)
pid=
simpid=
agentpid=
usbpid=
cleanup() {
	if [ -n "$simpid" ] && kill -0 "$simpid" 2>/dev/null; then kill -KILL "$simpid" 2>/dev/null || true; fi
	if [ -n "$agentpid" ] && kill -0 "$agentpid" 2>/dev/null; then kill -KILL "$agentpid" 2>/dev/null || true; fi
	if [ -n "$usbpid" ] && kill -0 "$usbpid" 2>/dev/null; then kill -KILL "$usbpid" 2>/dev/null || true; fi
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
RateLimit=0

[Provisioning]
Enable=yes
HelloListen=127.0.0.1:19971
AgentListen=127.0.0.1:18443
AgentTokenFile=$dir/agent-token

[CIRA]
Enable=yes
Listen=127.0.0.1:14433

[API]
Enable=yes
Listen=127.0.0.1:13000
CONF

# The site's provisioning certificate. A real site buys one for its domain
# (or uses amtd's own root with a USB key); the demo makes one with openssl:
# a root, and a leaf for the domain with serverAuth and Intel's AMT
# provisioning OID (spec/activation.md §12).
make_pfx() {
	local t=$dir/pki
	mkdir -p "$t"
	cat >"$t/ext.cnf" <<'CNF'
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[leaf]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, 2.16.840.1.113741.1.2.3
CNF
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$t/root.key" -subj "/O=amtd demo/CN=amtd demo root" -days 365 \
		-sha256 -extensions root -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n'; cat "$t/ext.cnf") -out "$t/root.pem" 2>/dev/null
	openssl req -new -newkey rsa:2048 -nodes -keyout "$t/leaf.key" -subj "/O=amtd demo/CN=amtprov.demo.amtd.test" -out "$t/leaf.csr" 2>/dev/null
	openssl x509 -req -in "$t/leaf.csr" -CA "$t/root.pem" -CAkey "$t/root.key" -set_serial 2 -sha256 -days 365 \
		-extfile "$t/ext.cnf" -extensions leaf -out "$t/leaf.pem" 2>/dev/null
	echo "demo-pfx-password" >"$t/password"
	openssl pkcs12 -export -inkey "$t/leaf.key" -in "$t/leaf.pem" -certfile "$t/root.pem" -passout file:"$t/password" -out "$dir/site.pfx"
	openssl x509 -in "$t/root.pem" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 >"$t/root.sha256"
}

echo "== demo site in $dir"
"$AMTD" store init --generate-key -c "$dir/amtd.conf"
make_pfx
echo "== amtd domain add demo.amtd.test --pfx site.pfx"
"$AMTD" domain add demo.amtd.test --pfx "$dir/site.pfx" --password-file "$dir/pki/password" -c "$dir/amtd.conf"
echo "== amtd agent-token and a CCM profile for rpc-go agents"
"$AMTD" agent-token --out "$dir/agent-token" >/dev/null
"$AMTD" profile add demo-ccm --mode ccm --no-cira -c "$dir/amtd.conf"
echo "== the default profile: ACM with CIRA, and KVM, SOL and IDER on without user consent"
"$AMTD" profile add demo-acm --default --mode acm --kvm --sol --ider --user-consent none -c "$dir/amtd.conf"
RELAYCLIENT=${RELAYCLIENT:-$dir/relayclient}
if [ ! -x "$RELAYCLIENT" ]; then go build -o "$RELAYCLIENT" ./tests/tools/relayclient/cmd/relayclient; fi

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
echo "== $DEVICES simulated AMT devices in Setup Mode (amtsim): they trust the site's root, look up"
echo "   ProvisionServer.demo.amtd.test through amtd's DNS and send their hellos to it"
"$AMTSIM" -count "$DEVICES" -seed demo -addr-base 127.0.2.1 -remote-config -root-hash "$(cat "$dir/pki/root.sha256")" \
	-dns 127.0.0.1:10053 -suffix demo.amtd.test -hello-port 19971 -hello-interval 2s -state-dir "$dir/devices" -mps 127.0.0.1:14433 \
	2>"$dir/amtsim.log" &
simpid=$!
echo "== 2 more hosts run rpc-go's remote mode (played by amtsim) against amtd's agent endpoint:"
echo "   rpc activate -u wss://127.0.0.1:18443/activate --profile demo-ccm --tenantid TOKEN -n"
"$AMTSIM" -count 2 -seed demo-agents -no-listen -rpc wss://127.0.0.1:18443/activate -rpc-command "activate --profile demo-ccm" \
	-rpc-tenantid "$(cat "$dir/agent-token")" -rpc-skip-cert-check 2>"$dir/amtsim-agents.log" &
agentpid=$!
echo "== 1 factory-fresh machine that trusts no site root boots with a USB key from amtd usb-setup:"
echo "   it takes a record (new MEBx password, the site's root hash, this appliance) and sends its hello"
"$AMTD" usb-setup --domain demo.amtd.test --out "$dir/setup.bin" --records 1 -c "$dir/amtd.conf" | sed 's/^/   /'
"$AMTSIM" -count 1 -seed demo-usb -addr-base 127.0.3.1 -setup-bin "$dir/setup.bin" -hello-interval 2s -mps 127.0.0.1:14433 \
	2>"$dir/amtsim-usb.log" &
usbpid=$!
# The hello and USB devices get the default profile (ACM with CIRA); the
# agents' profile says no CIRA.
CIRADEVICES=$((DEVICES + 1))
DEVICES=$((DEVICES + 3))
activated=0
for i in $(seq 1 120); do
	json=$("$AMTD" devices --json -c "$dir/amtd.conf" 2>/dev/null || true)
	activated=$(grep -cE '"ProvisioningState": "(activated|configured)"' <<<"$json" || true)
	connected=$(grep -c '"Connected": true' <<<"$json" || true)
	printf '\r   %d of %d devices activated, %d of %d connected over CIRA (%ds)' "$activated" "$DEVICES" "$connected" "$CIRADEVICES" "$i"
	if [ "$activated" -ge "$DEVICES" ] && [ "$connected" -ge "$CIRADEVICES" ]; then break; fi
	if ! kill -0 "$simpid" 2>/dev/null; then echo; echo "demo: amtsim exited:" >&2; cat "$dir/amtsim.log" >&2; exit 1; fi
	sleep 1
done
echo
echo "== amtd devices"
"$AMTD" devices -c "$dir/amtd.conf"
if [ "$activated" -lt "$DEVICES" ] || [ "$connected" -lt "$CIRADEVICES" ]; then
	echo "demo: FAILED: $activated of $DEVICES devices activated and $connected of $CIRADEVICES connected over CIRA in 120 s" >&2
	tail -n 50 "$dir/amtd.log" >&2
	exit 1
fi
echo
echo "== amtd usb-setup list (the USB record is matched to the machine that took it)"
"$AMTD" usb-setup list -c "$dir/amtd.conf"
first=$("$AMTD" devices --json -c "$dir/amtd.conf" | grep -m1 '"UUID"' | cut -d'"' -f4)
echo
echo "== amtd devices history $first"
"$AMTD" devices history "$first" -c "$dir/amtd.conf"

echo
echo "== the console API (spec/redirection.md §6, §7): an operator key from amtd apikey create"
KEY=$("$AMTD" apikey create --role operator --name demo-console -c "$dir/amtd.conf" 2>/dev/null)
API=https://127.0.0.1:13000
# The API's certificate comes from the appliance CA; fetch its root once
# (trust on first use, for the demo) and verify everything after with it.
curl -sSk -H "Authorization: Bearer $KEY" "$API/api/v1/ciracert" >"$dir/ca.pem"
guid=$(curl -sS --cacert "$dir/ca.pem" -H "Authorization: Bearer $KEY" "$API/api/v1/devices?status=1&\$top=1" | grep -o '"guid": *"[^"]*"' | head -1 | cut -d'"' -f4)
if [ -z "$guid" ]; then
	echo "demo: FAILED: the API lists no connected device" >&2
	exit 1
fi
echo "== curl -X POST $API/api/v1/amt/power/action/$guid -d '{\"action\": 10}'   (reset, over CIRA)"
curl -sS --cacert "$dir/ca.pem" -H "Authorization: Bearer $KEY" -X POST -d '{"action": 10}' "$API/api/v1/amt/power/action/$guid"
echo "== curl $API/api/v1/amt/power/state/$guid"
curl -sS --cacert "$dir/ca.pem" -H "Authorization: Bearer $KEY" "$API/api/v1/amt/power/state/$guid"
echo "== a KVM session through the relay: relayclient -mode kvm (the console holds no AMT password)"
if ! "$RELAYCLIENT" -url "$API" -key "$KEY" -cacert "$dir/ca.pem" -device "$guid" -mode kvm -bytes 4194304 -check | sed 's/^/   /'; then
	echo "demo: FAILED: the KVM session through the relay" >&2
	grep -i relay "$dir/amtd.log" | tail -n 20 >&2
	exit 1
fi
echo "== amtd's log of the relay session"
grep 'relay session' "$dir/amtd.log" | sed 's/^/   /'

echo
echo "== reload (SIGHUP)"
kill -HUP "$pid"
for _ in $(seq 1 50); do
	if "$AMTD" status --json -c "$dir/amtd.conf" 2>/dev/null | grep -q '"last_reload"'; then break; fi
	sleep 0.1
done
"$AMTD" status -c "$dir/amtd.conf" | grep 'last reload'

echo
echo "== stopping the devices and amtd (SIGTERM)"
kill -TERM "$simpid" "$agentpid" "$usbpid" 2>/dev/null || true
wait "$simpid" "$agentpid" "$usbpid" 2>/dev/null || true
simpid= agentpid= usbpid=
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
