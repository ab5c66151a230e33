package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"amtd/amt/password"
	"amtd/amt/setupbin"
	"amtd/daemon/config"
	"amtd/secret"
	"amtd/store"
)

const usbSetupUsage = `Usage: amtd usb-setup --domain SUFFIX --out FILE [OPTIONS]
       amtd usb-setup list [OPTIONS]
       amtd usb-setup export FILE-ID RECORD [--reason TEXT] [OPTIONS]

Writes a USB setup.bin (version 3, spec/network.md §3) for one-touch setup:
each machine that boots with the key takes the next record, which changes its
MEBx password, adds the domain's root hash as a trusted root, sets the PKI DNS
suffix and this appliance as the provisioning server, and starts remote
configuration; the machine then sends its hello and amtd activates it in ACM.
The new MEBx passwords are sealed in the store before the file is written.

  list      the files written and their records (never the passwords)
  export    print one record's new MEBx password (audited), to type it in MEBx

Run 'amtd usb-setup -h' for the options.
`

func cmdUSBSetup(c *cli, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return usbSetupList(c, args[1:])
		case "export":
			return usbSetupExport(c, args[1:])
		case "help":
			fmt.Fprint(c.stdout, usbSetupUsage)
			return exitOK
		}
	}
	return usbSetupWrite(c, args)
}

func usbSetupWrite(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "usb-setup", "--domain SUFFIX --out FILE", "Write a USB setup.bin for one-touch setup of machines in the domain SUFFIX (see amtd(8)).")
	domain := f.fs.String("domain", "", "the provisioning domain `SUFFIX` (added with amtd domain add)")
	out := f.fs.String("out", "", "the setup.bin `FILE` to write (on the USB key, in its root)")
	records := f.fs.Int("records", 1, "how many machines the key sets up (`N` records)")
	staticFile := f.fs.String("mebx-password-file", "", "give every record this new MEBx password (first line of `FILE`) instead of a random one each")
	currentFile := f.fs.String("current-mebx-password-file", "", "the machines' current MEBx password (first line of `FILE`); default: admin, the factory one")
	server := f.fs.String("server", "", "the `ADDRESS` machines send their hello to (IPv4); default: the first IPv4 [Site] Address=")
	reason := f.fs.String("reason", "USB one-touch setup", "why, for the audit trail")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(c.stderr, "amtd usb-setup: "+format+"\n", a...)
		return code
	}
	if *domain == "" || *out == "" {
		return fail(exitUsage, "--domain SUFFIX and --out FILE are required")
	}
	if *records < 1 || *records > setupbin.MaxRecords {
		return fail(exitUsage, "--records %d: a key holds 1 to %d records", *records, setupbin.MaxRecords)
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	addr, port, err := helloTarget(cfg, *server)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	current := secret.FromString("admin")
	if *currentFile != "" {
		if current, err = readPasswordLine(c, *currentFile); err != nil {
			return fail(exitFailure, "--current-mebx-password-file: %v", err)
		}
	}
	var static secret.Value
	if *staticFile != "" {
		if static, err = readPasswordLine(c, *staticFile); err != nil {
			return fail(exitFailure, "--mebx-password-file: %v", err)
		}
		if err := password.Check(static.RevealString()); err != nil {
			return fail(exitUsage, "the new MEBx password breaks AMT's rule: %v", err)
		}
	}

	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		suffix := strings.TrimSuffix(strings.ToLower(*domain), ".")
		d, err := s.Domains().Get(ctx, suffix)
		if errors.Is(err, store.ErrNotFound) {
			return fail(exitFailure, "no domain %s in the store: add its certificate first with amtd domain add %s --pfx FILE", suffix, suffix)
		}
		if err != nil {
			return fail(exitFailure, "%v", err)
		}
		d.PFX.Wipe()
		d.PFXPassword.Wipe()
		rootHash, err := hex.DecodeString(d.RootSHA256)
		if err != nil || len(rootHash) != sha256.Size {
			return fail(exitFailure, "domain %s has no root SHA-256 on record; run amtd domain replace-cert %s --pfx FILE", suffix, suffix)
		}

		// The label names the file in the host name each record gives its
		// machine, which amtd reads at activation to match record and device.
		lb := make([]byte, 5)
		if _, err := rand.Read(lb); err != nil {
			return fail(exitFailure, "%v", err)
		}
		label := hex.EncodeToString(lb)
		file := &setupbin.File{Version: 3}
		var pws []secret.Value
		defer func() {
			for _, p := range pws {
				p.Wipe()
			}
		}()
		for i := range *records {
			pw := static
			if pw.IsZero() {
				if pw, err = password.Generate(16); err != nil {
					return fail(exitFailure, "%v", err)
				}
			}
			pws = append(pws, secret.New(pw.Reveal()))
			vs, err := setupbin.Settings{CurrentMEBxPassword: current.RevealString(), NewMEBxPassword: pw.RevealString(), PKIDNSSuffix: suffix,
				ConfigServerFQDN: "provisionserver." + suffix, HostName: store.USBHostName(label, i+1),
				RootHash:   &setupbin.RootHash{Algorithm: 2, Hash: rootHash, Name: "amtd " + suffix},
				ServerAddr: addr, ServerPort: port, Start: true}.Vars()
			if err != nil {
				return fail(exitUsage, "record %d: %v", i+1, err)
			}
			file.Records = append(file.Records, setupbin.Record{Flags: setupbin.RecordValid | setupbin.RecordScrambled, Vars: vs})
		}
		b, err := setupbin.Encode(file)
		if err != nil {
			return fail(exitUsage, "%v", err)
		}
		sum := sha256.Sum256(b)
		id := hex.EncodeToString(sum[:])
		// The passwords are on disk, sealed, before the key exists.
		if err := s.USBRecords().Put(ctx, id, label, suffix, pws, c.actor(), *reason); err != nil {
			return fail(exitFailure, "%v", err)
		}
		if err := writeFileAtomic(*out, b, 0o600); err != nil {
			return fail(exitFailure, "%v (the records' passwords are stored under file id %s)", err, id)
		}
		fmt.Fprintf(c.stdout, "wrote %s: %d record(s) for domain %s\n  file id:        %s\n  root SHA-256:   %s\n  hello to:       %s port %d\n  MEBx password:  %s\n",
			*out, *records, suffix, id, d.RootSHA256, addr, port, map[bool]string{true: "the one given, on every record", false: "random per record, sealed in the store (amtd usb-setup export)"}[!static.IsZero()])
		fmt.Fprintf(c.stdout, "Each machine that boots with the key in MEBx takes the next record (host name %s, %s, ...),\nthen sends its hello to amtd, which matches the record to the machine when it activates it.\n",
			store.USBHostName(label, 1), store.USBHostName(label, 2))
		return exitOK
	})
}

// helloTarget is where machines send their hello: the given or first IPv4
// [Site] Address=, and the port of [Provisioning] HelloListen=.
func helloTarget(cfg *config.Config, server string) (netip.Addr, uint16, error) {
	var addr netip.Addr
	if server != "" {
		a, err := netip.ParseAddr(server)
		if err != nil || !a.Is4() {
			return addr, 0, fmt.Errorf("--server %s: want an IPv4 address (setup.bin takes IPv4)", server)
		}
		addr = a
	} else {
		for _, a := range cfg.Site.Addresses {
			if a.Is4() {
				addr = a
				break
			}
		}
		if !addr.IsValid() {
			return addr, 0, errors.New("no IPv4 [Site] Address= in the configuration: give --server ADDRESS")
		}
	}
	listen := cfg.Provisioning.HelloListen
	if listen == "" {
		listen = "0.0.0.0:9971"
	}
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		return addr, 0, fmt.Errorf("[Provisioning] HelloListen=%s: %w", listen, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return addr, 0, fmt.Errorf("[Provisioning] HelloListen=%s: %w", listen, err)
	}
	return addr, uint16(port), nil
}

func readPasswordLine(c *cli, path string) (secret.Value, error) {
	b, err := readSecretFile(c, path)
	if err != nil {
		return secret.Value{}, err
	}
	defer clear(b)
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return secret.Value{}, fmt.Errorf("%s: the first line is empty", path)
	}
	return secret.FromString(line), nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".setup-bin-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func usbSetupList(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "usb-setup list", "", "List the setup.bin files amtd wrote and their records.")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		recs, err := s.USBRecords().List(ctx, "")
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd usb-setup list: %v\n", err)
			return exitFailure
		}
		if len(recs) == 0 {
			fmt.Fprintln(c.stdout, "no setup.bin written yet (amtd usb-setup --domain SUFFIX --out FILE)")
			return exitOK
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "FILE ID\tRECORD\tHOST NAME\tDOMAIN\tWRITTEN\tDEVICE")
		for _, r := range recs {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", r.File, r.Record, store.USBHostName(r.Label, r.Record), r.Domain, r.Created.UTC().Format("2006-01-02 15:04"), orDash(r.Device))
		}
		_ = w.Flush()
		return exitOK
	})
}

func usbSetupExport(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "usb-setup export", "FILE-ID RECORD", "Print the new MEBx password of one record (audited).")
	reason := f.fs.String("reason", "", "why, for the audit trail (required)")
	pos, code := f.parse(c, args, 2)
	if code >= 0 {
		return code
	}
	rec, err := strconv.Atoi(pos[1])
	if err != nil || rec < 1 {
		fmt.Fprintf(c.stderr, "amtd usb-setup export: record %q: want a number from 1\n", pos[1])
		return exitUsage
	}
	if *reason == "" {
		fmt.Fprintln(c.stderr, "amtd usb-setup export: --reason is required: the audit trail says why a password left the store")
		return exitUsage
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		v, err := s.USBRecords().Export(ctx, strings.ToLower(pos[0]), rec, c.actor(), *reason)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd usb-setup export: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(c.stdout, v.RevealString())
		v.Wipe()
		return exitOK
	})
}
