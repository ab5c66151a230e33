package store

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"testing"

	"amtd/secret"
)

// TestNoPlaintextOnDiskOrInLogs writes secrets of every kind, logs at debug
// level into a buffer, provokes errors, and then greps the database, its WAL
// (while open, before the checkpoint), the log and every error text for the
// plaintexts.
func TestNoPlaintextOnDiskOrInLogs(t *testing.T) {
	var logs bytes.Buffer
	opts := testOptions(t)
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := WithActor(context.Background(), "test")
	s, err := Init(ctx, opts)
	must(t, err)
	defer s.Close()
	pws := []string{"Plain!Admin-0001", "Plain!Admin-0002", "Plain!MEBx-0003", "Plain!Mps-000004", "Plain!TSIG-0005", "Plain!PFX-0006", "Plain!PFXpw-0007"}
	var errs bytes.Buffer
	note := func(err error) {
		if err != nil {
			errs.WriteString(err.Error() + "\n")
		}
	}
	x := s.Secrets()
	must(t, x.SetPending(ctx, dev1, AMTAdmin, secret.FromString(pws[0]), "activation"))
	must(t, x.Promote(ctx, dev1, AMTAdmin))
	must(t, x.SetPending(ctx, dev1, AMTAdmin, secret.FromString(pws[1]), "change"))
	must(t, x.SetPending(ctx, dev1, MEBx, secret.FromString(pws[2]), "activation"))
	must(t, x.SetPending(ctx, dev1, MPS, secret.FromString(pws[3]), "cira"))
	must(t, s.Keys().Put(ctx, "ddns", KeyTSIG, secret.FromString(pws[4]), "test", ""))
	must(t, s.Domains().Put(ctx, Domain{Suffix: "corp.example.com", PFX: secret.FromString(pws[5]), PFXPassword: secret.FromString(pws[6])}, "test", ""))
	v, err := x.Export(ctx, dev1, AMTAdmin, "", "test", "grep test")
	must(t, err)
	opts.Logger.Info("exported", "value", v, "candidates", []secret.Value{v})
	note(x.SetPending(ctx, "bad", AMTAdmin, secret.FromString(pws[0]), ""))
	note(x.SetPending(ctx, dev1, "bogus", secret.FromString(pws[0]), ""))
	_, err = x.Export(ctx, dev2, MEBx, "", "test", "absent")
	note(err)
	newKey := opts.KeyFile + ".new"
	must(t, GenerateKeyFile(newKey))
	_, err = s.RotateKey(ctx, newKey, "test", "grep")
	must(t, err)

	scan := func(what string, b []byte) {
		t.Helper()
		if len(b) == 0 && what != "errors" {
			t.Errorf("%s is empty: the grep would prove nothing", what)
		}
		for _, p := range pws {
			if bytes.Contains(b, []byte(p)) {
				t.Errorf("%s holds plaintext %q", what, p)
			}
		}
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(opts.Path + suffix)
		must(t, err)
		scan("database file"+suffix, b)
	}
	must(t, s.Close())
	b, err := os.ReadFile(opts.Path)
	must(t, err)
	scan("database file after close", b)
	scan("log", logs.Bytes())
	scan("errors", errs.Bytes())
	if !bytes.Contains(logs.Bytes(), []byte("[redacted]")) {
		t.Error("log lacks the redacted value: the logger was not exercised")
	}
}
