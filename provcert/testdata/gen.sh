#!/bin/sh
# Regenerates the .pfx files the provcert tests decode: one provisioning
# chain (root -> intermediate -> leaf) exported in the three encodings found
# in the field. Run from anywhere: sh provcert/testdata/gen.sh
#
#   modern.pfx  OpenSSL 3 default: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), MAC SHA-256
#   3des.pfx    PBE-SHA1-3DES for key and certificates, MAC SHA-1 (Windows before 2019)
#   legacy.pfx  -legacy: key PBE-SHA1-3DES, certificates PBE-SHA1-RC2-40, MAC SHA-1
#
# Every file's password is in password.txt; root.sha256 is the root's
# SHA-256. The certificates are valid for 100 years from the day they were
# made; the tests take their clock from the leaf's NotBefore.
# It also rewrites the FuzzLoad seed corpus (fuzz/FuzzLoad, by mkcorpus.go).
# (Files with the certificates in other orders, SHA-1, short keys and the
# like are made in Go by the tests: see chain_test.go.)
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pw=$(cat password.txt)

cat >"$tmp/ext.cnf" <<'CNF'
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[inter]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, 2.16.840.1.113741.1.2.3
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

days=36500
key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/$1.key" 2>/dev/null; }
key root; key inter; key leaf
openssl req -new -key "$tmp/root.key" -subj "/O=amtd test/CN=amtd test root" -out "$tmp/root.csr"
openssl x509 -req -in "$tmp/root.csr" -signkey "$tmp/root.key" -sha256 -days $days \
	-extfile "$tmp/ext.cnf" -extensions root -out "$tmp/root.pem"
openssl req -new -key "$tmp/inter.key" -subj "/O=amtd test/CN=amtd test intermediate" -out "$tmp/inter.csr"
openssl x509 -req -in "$tmp/inter.csr" -CA "$tmp/root.pem" -CAkey "$tmp/root.key" -set_serial 2 -sha256 -days $days \
	-extfile "$tmp/ext.cnf" -extensions inter -out "$tmp/inter.pem"
openssl req -new -key "$tmp/leaf.key" -subj "/O=amtd test/CN=amtprov.corp.example.com" -out "$tmp/leaf.csr"
openssl x509 -req -in "$tmp/leaf.csr" -CA "$tmp/inter.pem" -CAkey "$tmp/inter.key" -set_serial 3 -sha256 -days $days \
	-extfile "$tmp/ext.cnf" -extensions leaf -out "$tmp/leaf.pem"

cat "$tmp/inter.pem" "$tmp/root.pem" >"$tmp/cas.pem"
export PW="$pw"
openssl pkcs12 -export -inkey "$tmp/leaf.key" -in "$tmp/leaf.pem" -certfile "$tmp/cas.pem" -passout env:PW -out modern.pfx
openssl pkcs12 -export -inkey "$tmp/leaf.key" -in "$tmp/leaf.pem" -certfile "$tmp/cas.pem" -passout env:PW \
	-keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 -out 3des.pfx
openssl pkcs12 -export -legacy -inkey "$tmp/leaf.key" -in "$tmp/leaf.pem" -certfile "$tmp/cas.pem" -passout env:PW \
	-keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-RC2-40 -macalg sha1 -out legacy.pfx
openssl x509 -in "$tmp/root.pem" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 >root.sha256
# The FuzzLoad seed corpus follows the files.
go run mkcorpus.go
