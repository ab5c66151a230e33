package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"amtd/provcert"
	"amtd/secret"
	"amtd/store"
)

const domainUsage = `Usage: amtd domain COMMAND [OPTIONS]

Commands:
  add SUFFIX            check a provisioning certificate (--pfx FILE) for the DNS suffix SUFFIX and store it, sealed;
                        or make one (--self-signed) under a root of this appliance that devices are given in MEBx or by USB
  list                  every domain: leaf CN, expiry, root verdict
  show SUFFIX           one domain in full, checked again now
  replace-cert SUFFIX   check and store a new certificate (--pfx FILE, or --self-signed) for a domain: a renewal
  remove SUFFIX         delete a domain and its certificate

The .pfx password is read from --password-file FILE, else from standard input,
else asked for when standard input is a terminal; never from the command line.
Run 'amtd domain add -h' for the options.
`

// cmdDomain manages the provisioning domains: the DNS suffixes amtd
// activates devices in ACM for, each with its provisioning certificate
// (spec/activation.md §12, §13).
func cmdDomain(c *cli, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, domainUsage)
		return exitUsage
	}
	switch args[0] {
	case "add":
		return domainPut(c, args[1:], false)
	case "replace-cert":
		return domainPut(c, args[1:], true)
	case "list":
		return domainList(c, args[1:])
	case "show":
		return domainShow(c, args[1:])
	case "remove":
		return domainRemove(c, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(c.stdout, domainUsage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "amtd domain: unknown command %q\n\n%s", args[0], domainUsage)
	return exitUsage
}

// domainMeta is what the store's metadata column keeps of a domain's
// certificate, so that list needs no password.
type domainMeta struct {
	LeafCN      string    `json:"leaf_cn"`
	Chain       []string  `json:"chain"` // subject CNs, leaf first
	RootSHA256  string    `json:"root_sha256"`
	DefaultRoot string    `json:"default_root"` // the verdict of provcert.RootVerdict
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Warnings    []string  `json:"warnings,omitempty"` // at the time it was stored
	// RootKey names the sealed root in the keys table when the certificate
	// was made by 'amtd domain add --self-signed'.
	RootKey string `json:"root_key,omitempty"`
}

func metaOf(b *provcert.Bundle, ps provcert.Problems) domainMeta {
	m := domainMeta{LeafCN: b.Leaf.Subject.CommonName, RootSHA256: b.RootSHA256(), DefaultRoot: provcert.RootVerdict(b.RootSHA256()),
		NotBefore: b.Leaf.NotBefore.UTC(), NotAfter: b.Leaf.NotAfter.UTC()}
	for _, c := range b.Chain {
		m.Chain = append(m.Chain, certName(c.Subject.CommonName, c.Subject.String()))
	}
	for _, p := range ps.Warnings() {
		m.Warnings = append(m.Warnings, p.Msg)
	}
	return m
}

func certName(cn, subject string) string {
	if cn != "" {
		return cn
	}
	return subject
}

// maxPassword bounds a password read from a file or standard input; RPS
// allows 64 characters (spec/activation.md §12.1).
const maxPassword = 1024

// readPassword gets the .pfx password: from file (- is standard input),
// else by a prompt without echo when standard input is a terminal, else
// from standard input. Only a final line break is removed.
func readPassword(c *cli, file string) (secret.Value, error) {
	var r io.Reader
	switch {
	case file != "" && file != "-":
		fh, err := os.Open(file)
		if err != nil {
			return secret.Value{}, err
		}
		defer fh.Close()
		r = fh
	case file == "" && isTerminal(c.stdin):
		return promptPassword(c)
	default:
		r = c.stdin
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPassword+1))
	defer clear(b)
	if err != nil {
		return secret.Value{}, fmt.Errorf("reading the password: %w", err)
	}
	if len(b) > maxPassword {
		return secret.Value{}, fmt.Errorf("the password input is over %d bytes: give a file holding only the password", maxPassword)
	}
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return secret.New(line), nil
}

// readPFX reads the .pfx, refusing a file too large to be one.
func readPFX(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, provcert.MaxPFXSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > provcert.MaxPFXSize {
		return nil, fmt.Errorf("%s is over %d KiB: not a provisioning .pfx", path, provcert.MaxPFXSize>>10)
	}
	return b, nil
}

func domainPut(c *cli, args []string, replace bool) int {
	name, about, reasonDefault := "domain add", "Check the provisioning certificate in FILE for the DNS suffix SUFFIX (spec/activation.md §12, §13)\n"+
		"and store it sealed under the master key. SUFFIX is the DNS suffix devices get (DHCP option 15 or\n"+
		"the MEBx PKI DNS suffix) or a parent of it. Nothing is stored if a check fails.\n\n"+
		"With --self-signed, amtd makes the certificate itself: a provisioning root for the domain (RSA 3072,\n"+
		"sealed in the store) and a leaf under it. Devices trust that root only once its SHA-256, printed here,\n"+
		"is added in MEBx or by a USB key ('amtd usb-setup').", "provisioning certificate added"
	if replace {
		name, about, reasonDefault = "domain replace-cert", "Check the new provisioning certificate in FILE for the domain SUFFIX and store it in place of\n"+
			"the old one (a renewal). Nothing changes if a check fails. With --self-signed, a new leaf is issued\n"+
			"under the domain's self-signed root (made now if the domain has none).", "provisioning certificate replaced"
	}
	f := newStoreFlagsFor(c, name, "SUFFIX --pfx FILE | --self-signed", about)
	pfxPath := f.fs.String("pfx", "", "the provisioning certificate with its key and chain, as PKCS#12 (`FILE`.pfx/.p12)")
	selfSigned := f.fs.Bool("self-signed", false, "make the certificate under a provisioning root of this appliance instead of reading one")
	pwFile := f.fs.String("password-file", "", "read the .pfx password from the first line of `FILE` (- for standard input)")
	reason := f.fs.String("reason", reasonDefault, "why, for the audit trail")
	asJSON := f.fs.Bool("json", false, "print JSON")
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(c.stderr, "amtd %s: "+format+"\n", append([]any{name}, a...)...)
		return exitFailure
	}
	suffix, err := provcert.NormalizeSuffix(pos[0])
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd %s: %v\n", name, err)
		return exitUsage
	}
	switch {
	case *pfxPath != "" && *selfSigned:
		fmt.Fprintf(c.stderr, "amtd %s: --pfx and --self-signed exclude each other: give a bought certificate or have amtd make one\n", name)
		return exitUsage
	case *selfSigned && *pwFile != "":
		fmt.Fprintf(c.stderr, "amtd %s: --password-file goes with --pfx; a --self-signed certificate gets a random password\n", name)
		return exitUsage
	case *pfxPath == "" && !*selfSigned:
		fmt.Fprintf(c.stderr, "amtd %s: give the certificate with --pfx FILE, or --self-signed for one made under this appliance's own root\n", name)
		return exitUsage
	}
	source, sourceFlag := *pfxPath, "--pfx FILE"
	if *selfSigned {
		source, sourceFlag = "the self-signed certificate", "--self-signed"
	}
	// The store first: no password is asked for a change that cannot happen.
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		ds := s.Domains()
		exists, err := ds.Exists(ctx, suffix)
		switch {
		case err != nil:
			return fail("%v", err)
		case exists && !replace:
			return fail("%s is already in the store: renew its certificate with 'amtd domain replace-cert %s %s'", suffix, suffix, sourceFlag)
		case !exists && replace:
			return fail("no domain %s in the store: add it with 'amtd domain add %s %s'", suffix, suffix, sourceFlag)
		}
		var (
			pfx         []byte
			pw          secret.Value
			rootCreated bool
		)
		if *selfSigned {
			pfx, pw, rootCreated, err = selfSignedPFX(ctx, s.Keys(), suffix, c.actor(), time.Now())
		} else {
			pfx, err = readPFX(*pfxPath)
			if err == nil {
				pw, err = readPassword(c, *pwFile)
			}
		}
		defer func() { clear(pfx); pw.Wipe() }() // what they hold by now
		if err != nil {
			return fail("%s: %v", suffix, err)
		}
		// A made certificate goes through the checks a bought one does: what is
		// stored is known to open and to pass (spec/activation.md §12).
		b, err := provcert.Load(pfx, pw.Reveal())
		if err != nil {
			return fail("%s: %s: %v", suffix, source, err)
		}
		ps := b.Check(provcert.Policy{Suffix: suffix, Now: time.Now()})
		for _, p := range ps.Warnings() {
			if *selfSigned && p.Check == provcert.CheckRoot {
				continue // expected: the hash is printed below with what to do
			}
			fmt.Fprintf(c.stderr, "warning: %s\n", p.Msg)
		}
		if errs := ps.Errors(); len(errs) > 0 {
			for _, p := range errs {
				fmt.Fprintf(c.stderr, "error: %s\n", p.Msg)
			}
			return fail("%s: %s was not stored: %d problem(s) above", suffix, source, len(errs))
		}
		meta := metaOf(b, ps)
		if *selfSigned {
			meta.RootKey = provRootKeyName(suffix)
		}
		metaJSON, err := json.Marshal(meta)
		if err != nil {
			return fail("%v", err)
		}
		d := store.Domain{Suffix: suffix, PFX: secret.New(pfx), PFXPassword: pw, RootSHA256: b.RootSHA256(), LeafExpiry: b.Leaf.NotAfter, Metadata: metaJSON}
		err = ds.Put(ctx, d, c.actor(), *reason)
		d.PFX.Wipe()
		if err != nil {
			return fail("%v", err)
		}
		verb := "added"
		if replace {
			verb = "replaced the certificate of"
		}
		if *asJSON {
			writeJSON(c, domainJSON{Suffix: suffix, domainMeta: meta, DaysLeft: d.DaysLeft(time.Now())})
		} else {
			fmt.Fprintf(c.stdout, "%s domain %s\n", verb, suffix)
			writeDomain(c.stdout, suffix, meta, time.Now())
			if *selfSigned {
				writeSelfSignedRoot(c.stdout, suffix, meta.RootSHA256, rootCreated)
			}
			fmt.Fprintln(c.stdout, "(a running amtd picks it up at the next hello)")
		}
		return exitOK
	})
}

// domainJSON is a domain as list and show --json print it.
type domainJSON struct {
	Suffix string `json:"suffix"`
	domainMeta
	DaysLeft int       `json:"days_left"`
	Created  time.Time `json:"created,omitzero"`
	Updated  time.Time `json:"updated,omitzero"`
	Problems []string  `json:"problems,omitempty"` // show: the checks run again now
}

// expiryText is the expiry with the days left, flagged within the warning.
func expiryText(notAfter, now time.Time) string {
	d := store.Domain{LeafExpiry: notAfter}
	days := d.DaysLeft(now)
	s := notAfter.UTC().Format(time.DateOnly)
	switch {
	case d.Expired(now):
		return s + " (EXPIRED: replace the certificate)"
	case d.ExpiresSoon(now):
		return fmt.Sprintf("%s (%d days left: renew it now)", s, days)
	}
	return fmt.Sprintf("%s (%d days left)", s, days)
}

func writeDomain(w io.Writer, suffix string, m domainMeta, now time.Time) {
	row := func(k, v string) { fmt.Fprintf(w, "  %-14s %s\n", k+":", v) }
	row("domain", suffix)
	row("leaf CN", orDash(m.LeafCN))
	for i, c := range m.Chain {
		k, v := "", "← "+c
		if i == 0 {
			k, v = "chain", c
		}
		if i == len(m.Chain)-1 && i > 0 {
			v += " (self-signed root)"
		}
		if k == "" {
			fmt.Fprintf(w, "  %-14s %s\n", "", v)
		} else {
			row(k, v)
		}
	}
	row("expires", expiryText(m.NotAfter, now))
	row("root SHA-256", orDash(m.RootSHA256))
	row("root", m.DefaultRoot)
}

func domainList(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "domain list", "", "List the provisioning domains and their certificates (never the keys or passwords).")
	asJSON := f.fs.Bool("json", false, "print JSON")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		list, err := s.Domains().List(ctx)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd domain list: %v\n", err)
			return exitFailure
		}
		now := time.Now()
		out := []domainJSON{}
		for _, d := range list {
			out = append(out, domainJSONOf(d, now))
		}
		if *asJSON {
			writeJSON(c, out)
			return exitOK
		}
		if len(out) == 0 {
			fmt.Fprintln(c.stdout, "no domains; add one with 'amtd domain add SUFFIX --pfx FILE'")
			return exitOK
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SUFFIX\tLEAF CN\tEXPIRES\tROOT")
		for _, d := range out {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.Suffix, orDash(d.LeafCN), expiryText(d.NotAfter, now), d.DefaultRoot)
		}
		_ = w.Flush()
		return exitOK
	})
}

func domainJSONOf(d store.Domain, now time.Time) domainJSON {
	var m domainMeta
	_ = json.Unmarshal(d.Metadata, &m) // a domain stored by other means may have none
	if m.NotAfter.IsZero() {
		m.NotAfter = d.LeafExpiry.UTC()
	}
	if m.RootSHA256 == "" {
		m.RootSHA256 = d.RootSHA256
	}
	if m.DefaultRoot == "" {
		m.DefaultRoot = provcert.RootVerdict(m.RootSHA256)
	}
	return domainJSON{Suffix: d.Suffix, domainMeta: m, DaysLeft: d.DaysLeft(now), Created: d.Created.UTC(), Updated: d.Updated.UTC()}
}

// domainArg opens the store and checks that the domain named by the one
// positional argument is in it.
func domainArg(c *cli, f *storeFlags, args []string) (*store.Store, string, int) {
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return nil, "", code
	}
	suffix, err := provcert.NormalizeSuffix(pos[0])
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", f.fs.Name(), err)
		return nil, "", exitUsage
	}
	ctx, cancel := storeContext()
	defer cancel()
	s, code := openStore(c, ctx, f)
	if s == nil {
		return nil, "", code
	}
	ok, err := s.Domains().Exists(ctx, suffix)
	if err == nil && !ok {
		err = fmt.Errorf("no domain %s in the store ('amtd domain list' shows the ones there are)", suffix)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", f.fs.Name(), err)
		return nil, "", closeStore(c, s, exitFailure)
	}
	return s, suffix, -1
}

func domainShow(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "domain show", "SUFFIX", "Show one domain and check its certificate again, at this moment (expiry, chain, suffix).")
	asJSON := f.fs.Bool("json", false, "print JSON")
	s, suffix, code := domainArg(c, f, args)
	if s == nil {
		return code
	}
	ctx, cancel := storeContext()
	defer cancel()
	d, err := s.Domains().Get(ctx, suffix)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd domain show: %v\n", err)
		return closeStore(c, s, exitFailure)
	}
	now := time.Now()
	j := domainJSONOf(d, now)
	// Open the stored file again: what was true at upload may not be now.
	b, err := provcert.Load(d.PFX.Reveal(), d.PFXPassword.Reveal())
	d.PFX.Wipe()
	d.PFXPassword.Wipe()
	var ps provcert.Problems
	if err != nil {
		ps = provcert.Problems{{Check: provcert.CheckDecode, Msg: "the stored certificate no longer opens: " + err.Error()}}
	} else {
		ps = b.Check(provcert.Policy{Suffix: suffix, Now: now})
		rootKey := j.RootKey
		j.domainMeta = metaOf(b, ps)
		j.RootKey = rootKey
	}
	for _, p := range ps {
		j.Problems = append(j.Problems, severityWord(p)+": "+p.Msg)
	}
	if *asJSON {
		writeJSON(c, j)
		return closeStore(c, s, exitOK)
	}
	writeDomain(c.stdout, suffix, j.domainMeta, now)
	row := func(k, v string) { fmt.Fprintf(c.stdout, "  %-14s %s\n", k+":", v) }
	row("added", j.Created.Format(time.DateTime))
	row("updated", j.Updated.Format(time.DateTime))
	if len(j.Problems) == 0 {
		row("checks", "all pass")
	}
	for i, p := range j.Problems {
		k := ""
		if i == 0 {
			k = "checks:"
		}
		fmt.Fprintf(c.stdout, "  %-14s %s\n", k, p)
	}
	return closeStore(c, s, exitOK)
}

func severityWord(p provcert.Problem) string {
	if p.Severity == provcert.Warning {
		return "warning"
	}
	return "error"
}

func domainRemove(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "domain remove", "SUFFIX", "Delete the domain and its sealed certificate and password (audited).\n"+
		"Devices in it can no longer be activated in admin control mode until a certificate is added again.")
	reason := f.fs.String("reason", "domain removed", "why, for the audit trail")
	s, suffix, code := domainArg(c, f, args)
	if s == nil {
		return code
	}
	ctx, cancel := storeContext()
	defer cancel()
	if err := s.Domains().Delete(ctx, suffix, c.actor(), *reason); err != nil {
		fmt.Fprintf(c.stderr, "amtd domain remove: %v\n", err)
		return closeStore(c, s, exitFailure)
	}
	fmt.Fprintf(c.stdout, "removed domain %s and its provisioning certificate\n", suffix)
	if _, err := s.Keys().Kind(ctx, provRootKeyName(suffix)); err == nil {
		// Devices given the root's hash keep it; adding the domain again
		// with --self-signed reuses the root, so they need nothing new.
		fmt.Fprintf(c.stdout, "its self-signed provisioning root stays in the store (%s) for when the domain is added again\n", provRootKeyName(suffix))
	}
	return closeStore(c, s, exitOK)
}
