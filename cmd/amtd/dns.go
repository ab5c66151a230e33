package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	mdns "github.com/miekg/dns"

	"amtd/netsvc/dns"
	"amtd/secret"
	"amtd/store"
)

// cmdDNS manages what the DNS service keeps in the store: amtd dns tsig
// add NAME [--secret-file F | --generate] | amtd dns tsig list.
func cmdDNS(c *cli, args []string) int {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `Usage: amtd dns tsig COMMAND [OPTIONS]

Commands:
  tsig add NAME   store a TSIG key, sealed: --secret-file FILE (base64, or tsig-keygen's key clause) or --generate
  tsig list       list the TSIG keys in the store (names and dates, never the secrets)

TSIG keys sign RFC 2136 updates: name them in [DNS] UpdateKey= (peers that may
update amtd's zones) or [DNSRegistrar] Key= (amtd registering ProvisionServer in
the site's DNS). Run 'amtd dns tsig add -h' for the options.
`)
	}
	if len(args) == 0 {
		usage(c.stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(c.stdout)
		return exitOK
	}
	if args[0] != "tsig" || len(args) < 2 {
		fmt.Fprintf(c.stderr, "amtd dns: unknown command %q\n\n", strings.Join(args, " "))
		usage(c.stderr)
		return exitUsage
	}
	switch args[1] {
	case "add":
		return dnsTSIGAdd(c, args[2:])
	case "list":
		return dnsTSIGList(c, args[2:])
	case "-h", "--help", "help":
		usage(c.stdout)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "amtd dns tsig: unknown command %q\n\n", args[1])
	usage(c.stderr)
	return exitUsage
}

// dnsFlags are the store flags of cmd/amtd/store.go under an amtd dns name.
func dnsFlags(c *cli, name, argsUsage, about string) *storeFlags {
	return newStoreFlagsFor(c, "dns "+name, argsUsage, about)
}

// maxSecretFile bounds what --secret-file reads: a key clause is < 200 bytes.
const maxSecretFile = 64 << 10

func dnsTSIGAdd(c *cli, args []string) int {
	f := dnsFlags(c, "tsig add", "NAME", "Store the TSIG key NAME, sealed under the master key, replacing one of the same name (audited).\n"+
		"Give the secret with --secret-file (the base64 secret, or the key clause tsig-keygen prints; - reads standard input),\n"+
		"or let amtd make one with --generate and give the printed key clause to the site's DNS administrator.")
	secretFile := f.fs.String("secret-file", "", "read the secret from `FILE` (- for standard input)")
	generate := f.fs.Bool("generate", false, "generate a new 256-bit secret and print it once, as a BIND key clause")
	reason := f.fs.String("reason", "TSIG key for DNS updates", "why, for the audit trail")
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return code
	}
	name := strings.TrimSuffix(strings.ToLower(pos[0]), ".")
	if _, ok := mdns.IsDomainName(name); !ok || name == "" || strings.ContainsAny(name, " \t\"") {
		fmt.Fprintf(c.stderr, "amtd dns tsig add: %q is not a valid key name (letters, digits, '-' and '.', as in a DNS name)\n", pos[0])
		return exitUsage
	}
	if (*secretFile == "") == !*generate {
		fmt.Fprintln(c.stderr, "amtd dns tsig add: give exactly one of --secret-file FILE and --generate")
		return exitUsage
	}
	var v secret.Value
	if *generate {
		raw := make([]byte, 32) // as long as the HMAC-SHA256 output (RFC 8945 §6)
		rand.Read(raw)
		v = secret.New(raw)
		clear(raw)
	} else {
		b, err := readSecretFile(c, *secretFile)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd dns tsig add: %v\n", err)
			return exitFailure
		}
		v, err = dns.ParseTSIGSecret(b)
		clear(b)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd dns tsig add: %s: %v\n", *secretFile, err)
			return exitFailure
		}
	}
	defer v.Wipe()
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		verb := "stored"
		switch kind, err := s.Keys().Kind(ctx, name); {
		case err == nil && kind != store.KeyTSIG:
			fmt.Fprintf(c.stderr, "amtd dns tsig add: the store already has a %s key called %s; choose another name\n", kind, name)
			return exitFailure
		case err == nil:
			verb = "replaced"
		case !errors.Is(err, store.ErrNotFound):
			fmt.Fprintf(c.stderr, "amtd dns tsig add: %v\n", err)
			return exitFailure
		}
		if err := s.Keys().Put(ctx, name, store.KeyTSIG, v, c.actor(), *reason); err != nil {
			fmt.Fprintf(c.stderr, "amtd dns tsig add: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "%s TSIG key %s (%d bytes, sealed); name it in [DNS] UpdateKey= or [DNSRegistrar] Key= and reload amtd\n", verb, name, v.Len())
		if *generate {
			fmt.Fprintf(c.stdout, "\nGive this key clause to the site's DNS administrator (it is shown only now):\n\n"+
				"key \"%s\" {\n\talgorithm hmac-sha256;\n\tsecret \"%s\";\n};\n", name, base64.StdEncoding.EncodeToString(v.Reveal()))
		}
		return exitOK
	})
}

func readSecretFile(c *cli, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = c.stdin
	} else {
		fh, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		r = fh
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		clear(b)
		return nil, fmt.Errorf("%s is over %d KiB: not a key file", path, maxSecretFile>>10)
	}
	return b, nil
}

func dnsTSIGList(c *cli, args []string) int {
	f := dnsFlags(c, "tsig list", "", "List the TSIG keys in the store: names and dates, never the secrets.")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		keys, err := s.Keys().List(ctx, store.KeyTSIG)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd dns tsig list: %v\n", err)
			return exitFailure
		}
		if len(keys) == 0 {
			fmt.Fprintln(c.stdout, "no TSIG keys; add one with 'amtd dns tsig add NAME --generate'")
			return exitOK
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tUPDATED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, k.Created.UTC().Format(time.RFC3339), k.Updated.UTC().Format(time.RFC3339))
		}
		tw.Flush()
		return exitOK
	})
}
