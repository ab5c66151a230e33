package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"amtd/netsvc/provision"
	"amtd/store"
)

const profileUsage = `Usage: amtd profile add|list|show|remove [NAME] [OPTIONS]

Commands:
  add NAME      create or replace a profile: --mode acm|ccm, --cira/--no-cira, --network
                dhcp|static|keep, and which devices it is for without an agent naming it:
                --uuid U, --suffix S (repeatable), --default
  list          every profile, one line each
  show NAME     one profile as JSON
  remove NAME   delete a profile

A device that sends a hello gets the profile listing its UUID, else the one with the
longest matching suffix, else the default one, else ACM with CIRA. An rpc-go agent
names its profile: rpc activate --profile NAME. Run 'amtd profile add -h' for the options.
`

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdProfile(c *cli, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, profileUsage)
		return exitUsage
	}
	switch args[0] {
	case "add":
		return profileAdd(c, args[1:])
	case "list":
		return profileList(c, args[1:])
	case "show":
		return profileShow(c, args[1:])
	case "remove":
		return profileRemove(c, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(c.stdout, profileUsage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "amtd profile: unknown command %q\n\n%s", args[0], profileUsage)
	return exitUsage
}

func validProfileName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func profileAdd(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "profile add", "NAME", "Create or replace the profile NAME (audited).")
	mode := f.fs.String("mode", "acm", "activation `MODE`: acm or ccm")
	cira := f.fs.Bool("cira", true, "configure CIRA to this appliance after activation (--cira=false for none)")
	noCIRA := f.fs.Bool("no-cira", false, "same as --cira=false")
	def := f.fs.Bool("default", false, "the profile for devices nothing else matches")
	var uuids, suffixes stringList
	f.fs.Var(&uuids, "uuid", "a device `UUID` this profile is for (repeatable)")
	f.fs.Var(&suffixes, "suffix", "a DNS `SUFFIX` whose devices get this profile (repeatable)")
	tlsOn := f.fs.Bool("tls", false, "give the device's TLS listener a certificate from the appliance CA (TLS mode 2: non-TLS still accepted)")
	kvm := f.fs.Bool("kvm", false, "turn KVM (remote desktop) on (off without it, when any of --kvm, --sol, --ider, --user-consent is given)")
	sol := f.fs.Bool("sol", false, "turn serial-over-LAN on")
	ider := f.fs.Bool("ider", false, "turn IDE redirection on")
	consent := f.fs.String("user-consent", "all", "which redirection sessions need the user's consent `CODE`: none, kvm or all (CCM: all)")
	network := f.fs.String("network", "keep", "the wired port's IP `SETTING`: dhcp (AMT shares the host's DHCP address), static (AMT shares the host OS's static address, kept in sync) or keep (leave it); Wi-Fi and 802.1X are not supported")
	reason := f.fs.String("reason", "profile change", "why, for the audit trail")
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return code
	}
	features := false
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "kvm", "sol", "ider", "user-consent":
			features = true
		}
	})
	name := pos[0]
	if !validProfileName(name) {
		fmt.Fprintf(c.stderr, "amtd profile add: %q is not a valid name: use up to 64 letters, digits, '-', '_' and '.' (rpc-go passes it as --profile NAME)\n", name)
		return exitUsage
	}
	netMode, err := provision.ParseNetwork(*network)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd profile add: --%v\n", err)
		return exitUsage
	}
	settings := provision.ProfileSettings{Mode: strings.ToLower(*mode), CIRA: *cira && !*noCIRA, TLS: *tlsOn, Network: netMode}
	if features {
		settings.Features = &provision.Features{KVM: *kvm, SOL: *sol, IDER: *ider, UserConsent: strings.ToLower(*consent)}
	}
	if err := settings.Validate(); err != nil {
		fmt.Fprintf(c.stderr, "amtd profile add: %v\n", err)
		return exitUsage
	}
	rules := provision.MatchRules{Default: *def}
	for _, u := range uuids {
		n, err := store.NormalizeUUID(u)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd profile add: --uuid %s: %v\n", u, err)
			return exitUsage
		}
		rules.UUIDs = append(rules.UUIDs, n)
	}
	for _, s := range suffixes {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
		if s == "" || strings.ContainsAny(s, " /:") {
			fmt.Fprintf(c.stderr, "amtd profile add: --suffix %q is not a DNS suffix\n", s)
			return exitUsage
		}
		rules.Suffixes = append(rules.Suffixes, s)
	}
	sj, _ := json.Marshal(settings)
	rj, _ := json.Marshal(rules)
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		if *def {
			others, err := s.Profiles().List(ctx)
			if err != nil {
				fmt.Fprintf(c.stderr, "amtd profile add: %v\n", err)
				return exitFailure
			}
			for _, o := range others {
				if _, m, err := provision.ParseProfile(o); err == nil && m.Default && o.Name != name {
					fmt.Fprintf(c.stderr, "amtd profile add: profile %s is already the default; remove --default from it first (amtd profile add %s ... without --default)\n", o.Name, o.Name)
					return exitFailure
				}
			}
		}
		verb := "added"
		if _, err := s.Profiles().Get(ctx, name); err == nil {
			verb = "replaced"
		}
		if err := s.Profiles().Put(ctx, store.Profile{Name: name, Settings: sj, MatchRules: rj}, c.actor(), *reason); err != nil {
			fmt.Fprintf(c.stderr, "amtd profile add: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "%s profile %s: %s\n", verb, name, describeProfile(settings, rules))
		return exitOK
	})
}

func describeProfile(s provision.ProfileSettings, m provision.MatchRules) string {
	parts := []string{strings.ToUpper(s.Mode)}
	if s.CIRA {
		parts = append(parts, "CIRA")
	} else {
		parts = append(parts, "no CIRA")
	}
	if s.TLS {
		parts = append(parts, "TLS")
	}
	switch s.Network {
	case provision.NetworkDHCP:
		parts = append(parts, "network DHCP")
	case provision.NetworkStatic:
		parts = append(parts, "network static (synced with the host)")
	}
	if f := s.Features; f != nil {
		var on []string
		for _, x := range []struct {
			name string
			on   bool
		}{{"KVM", f.KVM}, {"SOL", f.SOL}, {"IDER", f.IDER}} {
			if x.on {
				on = append(on, x.name)
			}
		}
		if len(on) == 0 {
			on = append(on, "no redirection")
		}
		parts = append(parts, strings.Join(on, "+")+", consent "+f.UserConsent)
	}
	var who []string
	if len(m.UUIDs) > 0 {
		who = append(who, fmt.Sprintf("%d device(s) by UUID", len(m.UUIDs)))
	}
	if len(m.Suffixes) > 0 {
		who = append(who, "suffix "+strings.Join(m.Suffixes, ", "))
	}
	if m.Default {
		who = append(who, "default")
	}
	if len(who) == 0 {
		who = append(who, "only when an agent names it")
	}
	return strings.Join(parts, ", ") + "; for " + strings.Join(who, "; ")
}

func profileList(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "profile list", "", "List the profiles.")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		ps, err := s.Profiles().List(ctx)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd profile list: %v\n", err)
			return exitFailure
		}
		if len(ps) == 0 {
			fmt.Fprintln(c.stdout, "no profiles: hellos get ACM with CIRA; add one with 'amtd profile add NAME --mode acm|ccm'")
			return exitOK
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tPROFILE")
		for _, p := range ps {
			st, m, err := provision.ParseProfile(p)
			desc := describeProfile(st, m)
			if err != nil {
				desc = "unreadable: " + err.Error()
			}
			fmt.Fprintf(w, "%s\t%s\n", p.Name, desc)
		}
		_ = w.Flush()
		return exitOK
	})
}

func profileShow(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "profile show", "NAME", "Print the profile NAME as JSON.")
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		p, err := s.Profiles().Get(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(c.stderr, "amtd profile show: no profile %s (amtd profile list shows them)\n", pos[0])
			return exitFailure
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd profile show: %v\n", err)
			return exitFailure
		}
		st, m, err := provision.ParseProfile(p)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd profile show: %v\n", err)
			return exitFailure
		}
		writeJSON(c, struct {
			Name     string                    `json:"name"`
			Settings provision.ProfileSettings `json:"settings"`
			Match    provision.MatchRules      `json:"match"`
		}{p.Name, st, m})
		return exitOK
	})
}

func profileRemove(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "profile remove", "NAME", "Delete the profile NAME (audited). Devices keep what it configured.")
	reason := f.fs.String("reason", "profile removed", "why, for the audit trail")
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		if _, err := s.Profiles().Get(ctx, pos[0]); errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(c.stderr, "amtd profile remove: no profile %s\n", pos[0])
			return exitFailure
		}
		if err := s.Profiles().Delete(ctx, pos[0], c.actor(), *reason); err != nil {
			fmt.Fprintf(c.stderr, "amtd profile remove: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "removed profile %s\n", pos[0])
		return exitOK
	})
}
