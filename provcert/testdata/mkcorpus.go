//go:build ignore

// Command mkcorpus writes the FuzzLoad seed corpus from the .pfx files
// gen.sh makes (run by gen.sh, from provcert/testdata).
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	pwb, err := os.ReadFile("password.txt")
	if err != nil {
		panic(err)
	}
	pw := strings.TrimSpace(string(pwb))
	w := func(name string, data []byte, pw string) {
		s := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nstring(%s)\n", strconv.Quote(string(data)), strconv.Quote(pw))
		if err := os.WriteFile("fuzz/FuzzLoad/"+name, []byte(s), 0o644); err != nil {
			panic(err)
		}
	}
	for _, n := range []string{"modern", "3des", "legacy"} {
		b, err := os.ReadFile(n + ".pfx")
		if err != nil {
			panic(err)
		}
		w(n, b, pw)
		w(n+"-wrong-password", b, "wrong")
		w(n+"-truncated", b[:len(b)/2], pw)
	}
	w("empty", nil, "")
	w("pem", []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), "")
	w("tiny-sequence", []byte{0x30, 0x03, 0x02, 0x01, 0x03}, "x")
}
