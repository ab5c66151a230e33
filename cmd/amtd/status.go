package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"amtd/daemon"
	"amtd/daemon/control"
)

// cmdStatus asks the running daemon for its status over the control socket.
// Exit codes: 0 it answered, 1 it could not be reached (or refused us), 2 usage.
func cmdStatus(c *cli, args []string) int {
	f := newCmdFlags(c, "status", "[-c FILE] [--json] [--socket PATH]", "Shows the running daemon's services, devices, store, uptime and last reload.\nExit status: 0 ok, 1 daemon not reachable, 2 usage.")
	fs := f.fs
	cfgPath := fs.String("config", defaultConfigPath, "configuration `file` (to find [Control] Socket=)")
	fs.StringVar(cfgPath, "c", defaultConfigPath, "configuration `file` (short for --config)")
	asJSON := fs.Bool("json", false, "print the status as JSON, for scripts")
	socket := fs.String("socket", "", "control socket `path` (default: [Control] Socket= of the configuration, else "+daemon.DefaultControlSocket+")")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the daemon's answer")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}

	// A file that fails to load is exactly when people ask the daemon how
	// it is doing (it keeps the old configuration on a bad reload), so
	// controlSocketPath takes Socket= from the text if it is there.
	path := controlSocketPath(c, fs, "status", *cfgPath, *socket)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var rep control.StatusReport
	err := func() error {
		cl, err := control.Dial(ctx, path)
		if err != nil {
			return err
		}
		defer cl.Close()
		return cl.Call(ctx, "status", nil, &rep)
	}()
	if err != nil {
		if errors.Is(err, control.ErrUnreachable) {
			fmt.Fprintf(c.stderr, "amtd status: no daemon answers on %s: %v\n"+
				"Start it with 'systemctl start amtd' (or in the foreground: 'amtd run -c %s'), or point at its socket with --socket PATH.\n",
				path, errors.Unwrap(err), *cfgPath)
		} else {
			fmt.Fprintf(c.stderr, "amtd status: %s: %v\n", path, err)
		}
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return exitFailure
		}
		return exitOK
	}
	printStatus(c.stdout, rep)
	return exitOK
}

// printStatus writes the report as a person reads it.
func printStatus(w io.Writer, rep control.StatusReport) {
	up := time.Duration(rep.UptimeSeconds) * time.Second
	fmt.Fprintf(w, "amtd %s, pid %d, up %s\n", rep.Version, rep.PID, up)
	fmt.Fprintf(w, "%s\n\n", rep.Summary)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "config:\t%s\n", rep.Config)
	fmt.Fprintf(tw, "store:\t%s\n", rep.Store)
	if rep.Devices.Error != "" {
		fmt.Fprintf(tw, "devices:\tunknown (store: %s), %d connected\n", rep.Devices.Error, rep.Devices.Connected)
	} else {
		fmt.Fprintf(tw, "devices:\t%d known, %d connected\n", rep.Devices.Known, rep.Devices.Connected)
	}
	fmt.Fprintf(tw, "activations:\t%d running\n", rep.Activations)
	switch lr := rep.LastReload; {
	case lr == nil:
		fmt.Fprintf(tw, "last reload:\tnone since start (%s)\n", rep.StartedAt.Local().Format(time.DateTime))
	case lr.OK:
		fmt.Fprintf(tw, "last reload:\tok at %s\n", lr.At.Local().Format(time.DateTime))
	default:
		fmt.Fprintf(tw, "last reload:\tFAILED at %s, still running the previous configuration:\n", lr.At.Local().Format(time.DateTime))
		for _, e := range lr.Errors {
			fmt.Fprintf(tw, "\t  %s\n", e)
		}
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tHEALTH\tSUMMARY")
	for _, s := range rep.Services {
		summary := s.Summary
		if s.Error != "" {
			summary = s.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.State, oneLine(s.Health), oneLine(summary))
	}
	tw.Flush()
	if rep.Provisioning != nil {
		printProvisioning(w, *rep.Provisioning, time.Now())
	}
	if len(rep.Sockets) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SOCKET\tKIND\tADDRESS\tFROM")
		for _, s := range rep.Sockets {
			from := "bound by amtd"
			if s.Activated {
				from = "systemd"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.Address, from)
		}
		tw.Flush()
	}
}

// statusRows bounds the running and queued devices listed as text; --json
// lists them all.
const statusRows = 20

// printProvisioning writes provisioning's progress: counts, the devices
// being activated and at which step, the queue, the last failures.
func printProvisioning(w io.Writer, p control.ProvisioningStatus, now time.Time) {
	fmt.Fprintf(w, "\nprovisioning: %d running (at most %d), %d queued (at most %d); since %s: %d done, %d failed\n",
		len(p.Running), p.MaxConcurrent, len(p.Queued), p.MaxQueued, p.Since.Local().Format(time.DateTime), p.Succeeded, p.Failed)
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return max(now.Sub(t), 0).Round(time.Second).String()
	}
	if len(p.Running) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTIVATING\tPATH\tADDRESS\tSTEP\tAT STEP FOR\tRUNNING FOR")
		for i, r := range p.Running {
			if i == statusRows {
				fmt.Fprintf(tw, "... and %d more (amtd status --json lists them all)\n", len(p.Running)-i)
				break
			}
			step := r.Step
			if step == "" {
				step = "starting"
			}
			if r.StepDetail != "" {
				step += " (" + oneLine(r.StepDetail) + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.UUID, r.Path, orDash(r.Address), step, ago(r.StepSince), ago(r.Started))
		}
		tw.Flush()
	}
	if len(p.Queued) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUED\tADDRESS\tWAITING FOR")
		for i, q := range p.Queued {
			if i == statusRows {
				fmt.Fprintf(tw, "... and %d more\n", len(p.Queued)-i)
				break
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", q.UUID, q.Address, ago(q.Since))
		}
		tw.Flush()
	}
	if len(p.RecentFailures) > 0 {
		fmt.Fprintln(w, "last failures (newest first; amtd devices show UUID has the history):")
		for _, f := range p.RecentFailures {
			fmt.Fprintf(w, "  %s  %s at step %s (%s): %s\n", f.At.Local().Format(time.DateTime), f.UUID, f.Step, f.Kind, oneLine(f.Reason))
		}
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// controlSocketFromText finds Socket= in the [Control] section of an
// amtd.conf that does not load as a whole.
func controlSocketFromText(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	section, found := "", ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[] \t")
		case strings.EqualFold(section, "Control"):
			if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "Socket" {
				found = strings.TrimSpace(v)
			}
		}
	}
	return found, found != ""
}
