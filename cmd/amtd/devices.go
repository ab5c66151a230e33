package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"amtd/store"
)

const devicesUsage = `Usage: amtd devices [list|show UUID|history UUID] [OPTIONS]

Commands:
  list           every device: provisioning state, control mode, AMT version, CIRA link (up or down since,
                 last seen, where from, ports forwarded), address, last error
  show UUID      one device in full: what it is, where it is in provisioning, its CIRA link, what happens
                 next, and which stored passwords it has (their states, never their values)
  history UUID   the device's provisioning steps, oldest first

Run 'amtd devices list -h' for the options (configuration file, database, --json).
`

// cmdDevices reads devices from the store: what an administrator asks
// first when a machine "does not show up".
func cmdDevices(c *cli, args []string) int {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list":
		return devicesList(c, args)
	case "show":
		return devicesShow(c, args)
	case "history":
		return devicesHistory(c, args)
	case "help":
		fmt.Fprint(c.stdout, devicesUsage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "amtd devices: unknown command %q\n\n%s", sub, devicesUsage)
	return exitUsage
}

var modeNames = map[int]string{0: "pre-provisioning", 1: "CCM", 2: "ACM"}

func modeName(m int) string {
	if n, ok := modeNames[m]; ok {
		return n
	}
	return fmt.Sprint(m)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ciraText is the CIRA link in a few words: up or down, and since when.
// The relay writes link state every few seconds (spec/apf.md §10), so it
// lags a link by that much.
func ciraText(d store.Device) string {
	switch {
	case d.CIRA.Connected && !d.CIRA.ConnectedSince.IsZero():
		return "up since " + timeText(d.CIRA.ConnectedSince)
	case d.CIRA.Connected:
		return "up"
	case !d.CIRA.LastDisconnected.IsZero():
		return "down since " + timeText(d.CIRA.LastDisconnected)
	}
	return "-"
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateTime)
}

// portsText lists the ports the device forwards on its link (AMT's
// TCPIP_FORWARD requests, spec/apf.md §4 step 6): `amtd forward` reaches
// these.
func portsText(ps []uint16) string {
	if len(ps) == 0 {
		return "-"
	}
	ps = slices.Clone(ps)
	slices.Sort(ps)
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

func addrText(d store.Device) string {
	var s []string
	for _, a := range d.Addresses {
		s = append(s, a.String())
	}
	return orDash(strings.Join(s, ","))
}

func devicesList(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "devices list", "", "List the devices the store knows.")
	asJSON := f.fs.Bool("json", false, "print JSON")
	limit := f.fs.Int("limit", 10000, "at most `N` devices")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		devs, err := s.Devices().List(ctx, store.DeviceQuery{Limit: *limit})
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd devices: %v\n", err)
			return exitFailure
		}
		if *asJSON {
			if devs == nil {
				devs = []store.Device{}
			}
			writeJSON(c, devs)
			return exitOK
		}
		if len(devs) == 0 {
			fmt.Fprintln(c.stdout, "no devices yet: they appear when they send a hello, take a lease, or connect")
			return exitOK
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "UUID\tSTATE\tMODE\tVERSION\tCIRA\tLAST SEEN\tCIRA FROM\tPORTS\tADDRESS\tLAST ERROR")
		for _, d := range devs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.UUID, orDash(d.ProvisioningState), modeName(d.ControlMode),
				orDash(d.AMTVersion), ciraText(d), timeText(d.CIRA.LastSeen), orDash(d.CIRA.RemoteAddr), portsText(d.CIRA.BoundPorts),
				addrText(d), orDash(cell(d.LastError, 60)))
		}
		_ = w.Flush()
		return exitOK
	})
}

// cell shortens an error for a table cell; `show` prints it whole.
func cell(s string, n int) string {
	s = firstLine(s)
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}

// deviceArg opens the store and finds the device named by the one
// positional argument.
func deviceArg(c *cli, f *storeFlags, args []string) (*store.Store, store.Device, int) {
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return nil, store.Device{}, code
	}
	uuid, err := store.NormalizeUUID(pos[0])
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", f.fs.Name(), err)
		return nil, store.Device{}, exitUsage
	}
	ctx, cancel := storeContext()
	defer cancel()
	s, code := openStore(c, ctx, f)
	if s == nil {
		return nil, store.Device{}, code
	}
	d, err := s.Devices().Get(ctx, uuid)
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(c.stderr, "%s: no device %s in the store (amtd devices list shows the known ones)\n", f.fs.Name(), uuid)
		return nil, store.Device{}, closeStore(c, s, exitFailure)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", f.fs.Name(), err)
		return nil, store.Device{}, closeStore(c, s, exitFailure)
	}
	return s, d, -1
}

type passwordStates struct {
	Admin []string `json:"admin"`
	MEBx  []string `json:"mebx"`
	MPS   []string `json:"mps"`
}

func devicesShow(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "devices show", "UUID", "Show one device in full. Stored passwords are listed by state only.")
	asJSON := f.fs.Bool("json", false, "print JSON")
	s, d, code := deviceArg(c, f, args)
	if s == nil {
		return code
	}
	ctx, cancel := storeContext()
	defer cancel()
	var pw passwordStates
	for kind, dst := range map[store.SecretKind]*[]string{store.AMTAdmin: &pw.Admin, store.MEBx: &pw.MEBx, store.MPS: &pw.MPS} {
		cs, err := s.Secrets().Candidates(ctx, d.UUID, kind)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			// A password that no longer opens is worth saying, not hiding.
			*dst = []string{"cannot open: " + cause(err)}
			continue
		}
		*dst = []string{}
		for _, x := range cs {
			*dst = append(*dst, x.State)
			x.Value.Wipe()
		}
	}
	if *asJSON {
		writeJSON(c, struct {
			store.Device
			Passwords passwordStates
		}{d, pw})
		return closeStore(c, s, exitOK)
	}
	w := c.stdout
	fmt.Fprintf(w, "device %s\n", d.UUID)
	row := func(k, v string) { fmt.Fprintf(w, "  %-18s %s\n", k+":", v) }
	row("state", orDash(d.ProvisioningState))
	row("control mode", modeName(d.ControlMode))
	row("AMT version", orDash(d.AMTVersion))
	row("host name", orDash(d.Hostname))
	row("DNS suffix", orDash(d.DNSSuffix))
	row("addresses", addrText(d))
	row("CIRA", ciraText(d))
	if c := d.CIRA; c.Connected || !c.LastSeen.IsZero() || c.MPSUsername != "" {
		row("CIRA last seen", timeText(c.LastSeen))
		row("CIRA from", orDash(c.RemoteAddr))
		row("CIRA ports", portsText(c.BoundPorts))
		if c.Connected {
			row("CIRA relay", orDash(c.OwnerInstance))
		}
		row("MPS user", orDash(c.MPSUsername))
	}
	row("last error", orDash(d.LastError))
	row("next action", orDash(d.NextAction))
	row("admin password", stateList(pw.Admin))
	row("MEBx password", stateList(pw.MEBx))
	row("MPS password", stateList(pw.MPS))
	row("first seen", d.Created.UTC().Format(time.DateTime))
	row("updated", d.Updated.UTC().Format(time.DateTime))
	return closeStore(c, s, exitOK)
}

func stateList(s []string) string {
	if len(s) == 0 {
		return "none stored"
	}
	return strings.Join(s, ", ")
}

func devicesHistory(c *cli, args []string) int {
	f := newStoreFlagsFor(c, "devices history", "UUID", "Show the device's provisioning steps, oldest first.")
	asJSON := f.fs.Bool("json", false, "print JSON")
	s, d, code := deviceArg(c, f, args)
	if s == nil {
		return code
	}
	ctx, cancel := storeContext()
	defer cancel()
	h, err := s.Devices().History(ctx, d.UUID)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd devices history: %v\n", err)
		return closeStore(c, s, exitFailure)
	}
	if *asJSON {
		if h == nil {
			h = []store.Transition{}
		}
		writeJSON(c, h)
		return closeStore(c, s, exitOK)
	}
	writeHistory(c.stdout, h)
	return closeStore(c, s, exitOK)
}

func writeHistory(out io.Writer, h []store.Transition) {
	if len(h) == 0 {
		fmt.Fprintln(out, "no provisioning steps recorded")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tSTATE\tSTEP\tDETAIL")
	for _, t := range h {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Time.UTC().Format("2006-01-02 15:04:05.000"), orDash(t.To), orDash(t.Step), orDash(t.Detail))
	}
	_ = w.Flush()
}
