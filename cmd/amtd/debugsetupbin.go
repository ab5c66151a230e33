package main

import (
	"encoding/hex"
	"errors"
	"fmt"

	"amtd/amt/roots"
	"amtd/amt/setupbin"
)

// setupBinRecordJSON is one record of `amtd debug decode setupbin --json`.
// MEBx passwords are reported as set or not, never printed: the store holds
// them (`amtd store export-secret`).
type setupBinRecordJSON struct {
	Number              uint32   `json:"number"`
	Valid               bool     `json:"valid"`
	Scrambled           bool     `json:"scrambled"`
	Next                bool     `json:"next,omitempty"`
	CurrentMEBxPassword bool     `json:"currentMEBxPasswordSet"`
	NewMEBxPassword     bool     `json:"newMEBxPasswordSet"`
	PKIDNSSuffix        string   `json:"pkiDNSSuffix,omitempty"`
	ConfigServerFQDN    string   `json:"configServerFQDN,omitempty"`
	RootHash            string   `json:"rootHash,omitempty"`
	RootHashName        string   `json:"rootHashName,omitempty"`
	RootHashDefault     string   `json:"rootHashDefaultRoot,omitempty"`
	ServerAddress       string   `json:"serverAddress,omitempty"`
	ServerPort          uint16   `json:"serverPort,omitempty"`
	StartProvisioning   bool     `json:"startProvisioning"`
	OtherEntries        []string `json:"otherEntries,omitempty"`
	Error               string   `json:"error,omitempty"`
}

func decodeSetupBin(c *cli, data []byte, asJSON bool) int {
	f, err := setupbin.Decode(data)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, setupbin.ErrFormat) {
			msg += " (a setup.bin is a 512-byte header and 512-byte records; is this the file from the USB key?)"
		}
		fmt.Fprintf(c.stderr, "amtd debug: %s\n", msg)
		return exitFailure
	}
	next := f.Next()
	recs := make([]setupBinRecordJSON, len(f.Records))
	for i, r := range f.Records {
		j := setupBinRecordJSON{Number: r.Number, Valid: r.Valid(), Scrambled: r.Flags&setupbin.RecordScrambled != 0, Next: i == next}
		s, other, err := setupbin.SettingsOf(r)
		if err != nil {
			j.Error = err.Error()
		}
		j.CurrentMEBxPassword, j.NewMEBxPassword = s.CurrentMEBxPassword != "", s.NewMEBxPassword != ""
		j.PKIDNSSuffix, j.ConfigServerFQDN = s.PKIDNSSuffix, s.ConfigServerFQDN
		if h := s.RootHash; h != nil {
			j.RootHash, j.RootHashName = hex.EncodeToString(h.Hash), h.Name
			if root, ok := roots.LookupHex(j.RootHash); ok {
				j.RootHashDefault = root.CA
			}
		}
		if s.ServerAddr.IsValid() {
			j.ServerAddress = s.ServerAddr.String()
		}
		j.ServerPort, j.StartProvisioning, j.OtherEntries = s.ServerPort, s.Start, other
		recs[i] = j
	}
	if asJSON {
		writeJSON(c, map[string]any{"kind": "setupbin", "bytes": len(data), "version": f.Version,
			"major": f.Major, "minor": f.Minor, "doNotConsume": f.Flags&setupbin.FlagDoNotConsume != 0,
			"records": recs, "consumed": f.Consumed, "notes": f.Notes})
		return exitOK
	}
	w := c.stdout
	fmt.Fprintf(w, "%s, %d bytes\n", f, len(data))
	if next < 0 {
		fmt.Fprintln(w, "every record is consumed: the key touches no more machines")
	} else {
		fmt.Fprintf(w, "next machine takes record %d\n", f.Records[next].Number)
	}
	for _, n := range f.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	set := func(b bool) string {
		if b {
			return "set"
		}
		return "not set"
	}
	for _, r := range recs {
		state := "consumed"
		if r.Valid {
			state = "unused"
		}
		if r.Scrambled {
			state += ", scrambled"
		}
		fmt.Fprintf(w, "record %d (%s)\n", r.Number, state)
		fmt.Fprintf(w, "  MEBx password: current %s, new %s\n", set(r.CurrentMEBxPassword), set(r.NewMEBxPassword))
		if r.PKIDNSSuffix != "" {
			fmt.Fprintf(w, "  PKI DNS suffix: %s\n", r.PKIDNSSuffix)
		}
		if r.ConfigServerFQDN != "" {
			fmt.Fprintf(w, "  configuration server: %s\n", r.ConfigServerFQDN)
		}
		if r.RootHash != "" {
			which := r.RootHashDefault
			if which == "" {
				which = "not a default root"
			}
			fmt.Fprintf(w, "  user root hash: %s %q (%s)\n", r.RootHash, r.RootHashName, which)
		}
		if r.ServerAddress != "" || r.ServerPort != 0 {
			fmt.Fprintf(w, "  provisioning server: %s port %d\n", r.ServerAddress, r.ServerPort)
		}
		fmt.Fprintf(w, "  start provisioning: %t\n", r.StartProvisioning)
		if len(r.OtherEntries) > 0 {
			fmt.Fprintf(w, "  other entries (module/var): %v\n", r.OtherEntries)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Error)
		}
	}
	return exitOK
}
