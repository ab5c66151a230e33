package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"amtd/store"
)

const apikeyUsage = `Usage: amtd apikey create|list|revoke [NAME] [OPTIONS]

Commands:
  create        make a key for the console API ([API]): --role viewer|operator|admin, --name N;
                the token is printed once, only its SHA-256 is stored
  list          every key: id, name, role, created, last used, revoked
  revoke NAME   end the key with this name or id at once

Consoles send the token as "Authorization: Bearer TOKEN" (or "X-Api-Key: TOKEN").
viewer reads devices; operator will also act on them; admin also reads amtd's audit trail.
Run 'amtd apikey create -h' for the options.
`

func cmdAPIKey(c *cli, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, apikeyUsage)
		return exitUsage
	}
	switch args[0] {
	case "create":
		return apikeyCreate(c, args[1:])
	case "list":
		return apikeyList(c, args[1:])
	case "revoke":
		return apikeyRevoke(c, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(c.stdout, apikeyUsage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "amtd apikey: unknown command %q\n\n%s", args[0], apikeyUsage)
	return exitUsage
}

func apikeyCreate(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "apikey create", "--role ROLE [--name N]",
		"Make a console API key (audited) and print its token once: store it now, amtd keeps only its hash.")
	role := f.fs.String("role", "", "what the key may do: `ROLE` viewer, operator or admin")
	name := f.fs.String("name", "", "a `NAME` for the key (who or what uses it), unique among live keys")
	reason := f.fs.String("reason", "api key created", "why, for the audit trail")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	r := strings.ToLower(*role)
	if r != store.RoleViewer && r != store.RoleOperator && r != store.RoleAdmin {
		fmt.Fprintln(c.stderr, "amtd apikey create: --role must be viewer, operator or admin")
		return exitUsage
	}
	n := strings.TrimSpace(*name)
	if len(n) > 64 || strings.ContainsFunc(n, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		fmt.Fprintln(c.stderr, "amtd apikey create: --name: use up to 64 printable characters")
		return exitUsage
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		if n != "" {
			if live, _, err := findKeys(ctx, s, n); err != nil {
				fmt.Fprintf(c.stderr, "amtd apikey create: %v\n", err)
				return exitFailure
			} else if len(live) > 0 {
				fmt.Fprintf(c.stderr, "amtd apikey create: a live key is already named %s (id %s); revoke it first or choose another name\n", n, live[0].ID)
				return exitFailure
			}
		}
		tok, k, err := s.APIKeys().Create(ctx, n, r, c.actor(), *reason)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd apikey create: %v\n", err)
			return exitFailure
		}
		defer tok.Wipe()
		fmt.Fprintf(c.stderr, "created API key %s (%s): the token follows, shown this once\n", displayName(k), k.Role)
		fmt.Fprintln(c.stdout, tok.RevealString())
		return exitOK
	})
}

func displayName(k store.APIKey) string {
	if k.Name == "" {
		return "id " + k.ID
	}
	return k.Name + ", id " + k.ID
}

func apikeyList(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "apikey list", "", "List the console API keys; tokens are never shown, only their public prefix.")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		ks, err := s.APIKeys().List(ctx)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd apikey list: %v\n", err)
			return exitFailure
		}
		if len(ks) == 0 {
			fmt.Fprintln(c.stdout, "no API keys: make one with 'amtd apikey create --role viewer|operator|admin --name N'")
			return exitOK
		}
		when := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.Local().Format("2006-01-02 15:04")
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tROLE\tTOKEN\tCREATED\tLAST USED\tREVOKED")
		for _, k := range ks {
			n := k.Name
			if n == "" {
				n = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\tamtd_%s_…\t%s\t%s\t%s\n", k.ID, n, k.Role, k.Prefix, when(k.Created), when(k.LastUsed), when(k.Revoked))
		}
		_ = w.Flush()
		return exitOK
	})
}

// findKeys returns the live keys named, or with the id, nameOrID, and
// whether any key (live or not) matched.
func findKeys(ctx context.Context, s *store.Store, nameOrID string) (live []store.APIKey, found bool, err error) {
	ks, err := s.APIKeys().List(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, k := range ks {
		if k.ID != nameOrID && k.Name != nameOrID {
			continue
		}
		found = true
		if k.Revoked.IsZero() {
			live = append(live, k)
		}
	}
	return live, found, nil
}

func apikeyRevoke(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "apikey revoke", "NAME",
		"End the API key with this name or id (audited). Calls with its token are refused from then on.")
	reason := f.fs.String("reason", "api key revoked", "why, for the audit trail")
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		live, found, err := findKeys(ctx, s, pos[0])
		switch {
		case err != nil:
			fmt.Fprintf(c.stderr, "amtd apikey revoke: %v\n", err)
			return exitFailure
		case len(live) == 0 && found:
			fmt.Fprintf(c.stderr, "amtd apikey revoke: key %s is already revoked\n", pos[0])
			return exitOK
		case len(live) == 0:
			fmt.Fprintf(c.stderr, "amtd apikey revoke: no key named %s (amtd apikey list shows them)\n", pos[0])
			return exitFailure
		case len(live) > 1:
			var ids []string
			for _, k := range live {
				ids = append(ids, k.ID)
			}
			fmt.Fprintf(c.stderr, "amtd apikey revoke: %d live keys are named %s; revoke one by id: %s\n", len(live), pos[0], strings.Join(ids, ", "))
			return exitFailure
		}
		if err := s.APIKeys().Revoke(ctx, live[0].ID, c.actor(), *reason); err != nil {
			fmt.Fprintf(c.stderr, "amtd apikey revoke: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "revoked API key %s\n", displayName(live[0]))
		return exitOK
	})
}
