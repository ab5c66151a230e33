package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"amtd/secret"
)

const (
	dev1 = "33221100-5544-7766-8899-aabbccddeeff"
	dev2 = "01020304-0506-0708-090a-0b0c0d0e0f10"
)

// rawDB opens the store's file directly, bypassing the store, the way an
// attacker with the disk would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDevices(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	mac, _ := net.ParseMAC("00:11:22:33:44:55")
	d := Device{
		UUID: strings.ToUpper(dev1), Hostname: "pc1", FriendlyName: "Front desk", DNSSuffix: "corp.example.com",
		Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}, MAC: mac,
		AMTVersion: "16.1.27", AMTBuild: "2225", AMTSKU: "16392", ControlMode: 2, ProvisioningState: "hello_received",
		CIRA: CIRAState{MPSUsername: "dev1user", BoundPorts: []uint16{16992, 16994}}, Tags: []string{"lab", "floor2"},
	}
	must(t, s.Devices().Put(ctx, d))
	got, err := s.Devices().Get(ctx, dev1)
	must(t, err)
	if got.UUID != dev1 || got.Hostname != "pc1" || got.MAC.String() != mac.String() || len(got.Addresses) != 2 ||
		got.Addresses[1] != netip.MustParseAddr("fd00::5") || got.ControlMode != 2 || got.CIRA.BoundPorts[1] != 16994 ||
		got.Tags[1] != "floor2" || got.Created.IsZero() || got.AMTSKU != "16392" {
		t.Errorf("Get: %+v", got)
	}
	if _, err := s.Devices().Get(ctx, dev2); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get absent: %v", err)
	}
	if _, err := s.Devices().Get(ctx, "not-a-uuid"); err == nil {
		t.Error("Get accepted a malformed uuid")
	}
	d.ProvisioningState = "activated"
	must(t, s.Devices().Put(ctx, d))
	must(t, s.Devices().SetState(ctx, dev1, "cira_configured", "AddMpServer", "ReturnValue 0", false))
	must(t, s.Devices().SetState(ctx, dev1, "failed", "SetTLS", "ReturnValue 2057", true))
	h, err := s.Devices().History(ctx, dev1)
	must(t, err)
	wantTo := []string{"hello_received", "activated", "cira_configured", "failed"}
	if len(h) != len(wantTo) {
		t.Fatalf("history: %+v", h)
	}
	for i, tr := range h {
		if tr.To != wantTo[i] {
			t.Errorf("history[%d] to %q, want %q", i, tr.To, wantTo[i])
		}
	}
	if h[3].From != "cira_configured" || h[3].Step != "SetTLS" || h[3].Detail != "ReturnValue 2057" {
		t.Errorf("history[3]: %+v", h[3])
	}
	got, _ = s.Devices().Get(ctx, dev1)
	if got.LastError != "ReturnValue 2057" || got.ProvisioningState != "failed" {
		t.Errorf("after SetState: %+v", got)
	}
	must(t, s.Devices().Put(ctx, Device{UUID: dev2, Tags: []string{"lab"}}))
	n, err := s.Devices().Count(ctx)
	must(t, err)
	if n != 2 {
		t.Errorf("Count %d", n)
	}
	seen := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	must(t, s.Devices().SetCIRA(ctx, dev2, CIRAState{Connected: true, ConnectedSince: seen, OwnerInstance: "a"}))
	must(t, s.Devices().TouchSeen(ctx, map[string]time.Time{dev2: seen.Add(time.Minute)}))
	yes := true
	conn, err := s.Devices().List(ctx, DeviceQuery{Connected: &yes})
	must(t, err)
	if len(conn) != 1 || conn[0].UUID != dev2 || !conn[0].CIRA.LastSeen.Equal(seen.Add(time.Minute)) {
		t.Errorf("List connected: %+v", conn)
	}
	floor2, err := s.Devices().List(ctx, DeviceQuery{Tag: "floor2"})
	must(t, err)
	if len(floor2) != 1 || floor2[0].UUID != dev1 {
		t.Errorf("List tag floor2: %+v", floor2)
	}
	released, err := s.Devices().ReleaseInstance(ctx, "a")
	must(t, err)
	if released != 1 {
		t.Errorf("ReleaseInstance: %d", released)
	}
	must(t, s.Secrets().SetPending(ctx, dev1, AMTAdmin, secret.FromString("P@ssw0rd-dev1"), "test"))
	must(t, s.Devices().Delete(ctx, dev1, "test", "retired"))
	if _, err := s.Secrets().Candidates(ctx, dev1, AMTAdmin); !errors.Is(err, ErrNotFound) {
		t.Errorf("secrets survive device delete: %v", err)
	}
}

func candidateStates(t *testing.T, cs []Candidate) string {
	t.Helper()
	var b []string
	for _, c := range cs {
		b = append(b, c.State+"="+c.Value.RevealString())
	}
	return strings.Join(b, " ")
}

func TestSecretsHistory(t *testing.T) {
	ctx := WithActor(context.Background(), "test:activation")
	s, _ := newTestStore(t)
	x := s.Secrets()
	step := func(want string) {
		t.Helper()
		cs, err := x.Candidates(ctx, dev1, AMTAdmin)
		must(t, err)
		if got := candidateStates(t, cs); got != want {
			t.Errorf("candidates %q, want %q", got, want)
		}
	}
	if _, err := x.Candidates(ctx, dev1, AMTAdmin); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no secrets: %v", err)
	}
	must(t, x.SetPending(ctx, dev1, AMTAdmin, secret.FromString("A1!aaaaa"), "activation"))
	step("pending=A1!aaaaa")
	must(t, x.Promote(ctx, dev1, AMTAdmin))
	step("current=A1!aaaaa")
	must(t, x.SetPending(ctx, dev1, AMTAdmin, secret.FromString("B2!bbbbb"), "changepassword"))
	step("current=A1!aaaaa pending=B2!bbbbb")
	// A second SetPending is refused while the first is unresolved: the
	// device may have it.
	if err := x.SetPending(ctx, dev1, AMTAdmin, secret.FromString("C3!ccccc"), "changepassword retry"); !errors.Is(err, ErrPendingExists) {
		t.Fatalf("SetPending over a pending password: %v", err)
	}
	step("current=A1!aaaaa pending=B2!bbbbb")
	must(t, x.Discard(ctx, dev1, AMTAdmin, "device refused"))
	must(t, x.SetPending(ctx, dev1, AMTAdmin, secret.FromString("C3!ccccc"), "changepassword retry"))
	step("current=A1!aaaaa pending=C3!ccccc")
	must(t, x.Promote(ctx, dev1, AMTAdmin))
	step("current=C3!ccccc previous=A1!aaaaa")
	must(t, x.SetPending(ctx, dev1, AMTAdmin, secret.FromString("D4!ddddd"), "changepassword"))
	step("current=C3!ccccc pending=D4!ddddd previous=A1!aaaaa")
	must(t, x.Discard(ctx, dev1, AMTAdmin, "device refused"))
	step("current=C3!ccccc previous=A1!aaaaa")
	if err := x.Promote(ctx, dev1, AMTAdmin); !errors.Is(err, ErrNotFound) {
		t.Errorf("Promote with nothing pending: %v", err)
	}
	cur, err := x.Current(ctx, dev1, AMTAdmin)
	must(t, err)
	if cur.RevealString() != "C3!ccccc" {
		t.Error("Current: wrong value")
	}
	// Kinds are separate.
	if _, err := x.Candidates(ctx, dev1, MEBx); !errors.Is(err, ErrNotFound) {
		t.Errorf("mebx: %v", err)
	}
	if err := x.SetPending(ctx, dev1, "root", secret.FromString("x"), ""); err == nil {
		t.Error("SetPending accepted kind root")
	}

	// Export is audited, needs a reason, and the audit trail never holds a value.
	if _, err := x.Export(ctx, dev1, AMTAdmin, "", "cli:root", ""); err == nil {
		t.Error("Export without a reason")
	}
	v, err := x.Export(ctx, dev1, AMTAdmin, "", "cli:root", "ticket 42")
	must(t, err)
	if v.RevealString() != "C3!ccccc" {
		t.Error("Export: wrong value")
	}
	if _, err := x.Export(ctx, dev2, AMTAdmin, "", "cli:root", "ticket 43"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Export absent: %v", err)
	}
	au, err := s.AuditList(ctx, AuditQuery{})
	must(t, err)
	var actions []string
	for _, e := range au {
		actions = append(actions, e.Action+"/"+e.Actor)
		for _, pw := range []string{"A1!aaaaa", "B2!bbbbb", "C3!ccccc", "D4!ddddd"} {
			if strings.Contains(e.Object+e.Reason+e.Result+e.Actor, pw) {
				t.Errorf("audit row holds a password: %+v", e)
			}
		}
	}
	joined := strings.Join(actions, " ")
	for _, want := range []string{"secret.export/cli:root", "secret.set_pending/test:activation", "secret.promote/test:activation", "secret.discard_pending/test:activation"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit lacks %s: %s", want, joined)
		}
	}
	if au[0].Action != "secret.export" || !strings.HasPrefix(au[0].Result, "error:") || au[0].Reason != "ticket 43" {
		t.Errorf("failed export audit: %+v", au[0])
	}
}

func TestCheckMPS(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	x := s.Secrets()
	must(t, x.SetPending(ctx, dev1, MPS, secret.FromString("Abcdefgh12345!@#"), "cira setup"))
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"Abcdefgh12345!@#", true}, {"Abcdefgh12345!@", false}, {"", false}} {
		ok, err := x.CheckMPS(ctx, dev1, []byte(tc.pw))
		must(t, err)
		if ok != tc.want {
			t.Errorf("CheckMPS(%q) = %v", tc.pw, ok)
		}
	}
	var h string
	must(t, rawDB(t, s.Path()).QueryRow(`SELECT slow_hash FROM device_secrets`).Scan(&h))
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("slow hash %q", h)
	}
	if ok, _ := x.CheckMPS(ctx, dev2, []byte("Abcdefgh12345!@#")); ok {
		t.Error("another device's password accepted")
	}
}

func TestWrongKeyRefused(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Secrets().SetPending(ctx, dev1, AMTAdmin, secret.FromString("A1!aaaaa"), ""))
	kid := s.KeyID()
	must(t, s.Close())
	other := filepath.Join(t.TempDir(), "other.key")
	must(t, GenerateKeyFile(other))
	opts.KeyFile = other
	_, err := Open(ctx, opts)
	if !errors.Is(err, ErrWrongKey) || errors.Is(err, ErrTampered) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), kid) || !strings.Contains(err.Error(), "use that key file") {
		t.Errorf("error does not say which key to use: %v", err)
	}
}

// tamper runs SQL on the closed store's file.
func tamper(t *testing.T, path, q string, args ...any) {
	t.Helper()
	db := rawDB(t, path)
	res, err := db.Exec(q, args...)
	must(t, err)
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("tamper %q changed nothing", q)
	}
	db.Close()
}

// flipBit flips the low bit of byte i (from the end when negative) of the
// one sealed value in table.column.
func flipBit(t *testing.T, path, table, column string, i int) {
	t.Helper()
	db := rawDB(t, path)
	var b []byte
	must(t, db.QueryRow(`SELECT `+column+` FROM `+table).Scan(&b))
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 1
	tamper(t, path, `UPDATE `+table+` SET `+column+` = ?`, b)
}

func TestTamperedCiphertext(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Secrets().SetPending(ctx, dev1, AMTAdmin, secret.FromString("A1!aaaaa"), ""))
	must(t, s.Close())
	// Flip one bit in the middle of the ciphertext.
	flipBit(t, opts.Path, "device_secrets", "value_sealed", 25)
	s, err := Open(ctx, opts)
	must(t, err)
	defer s.Close()
	_, err = s.Secrets().Candidates(ctx, dev1, AMTAdmin)
	if !errors.Is(err, ErrTampered) || errors.Is(err, ErrWrongKey) || errors.Is(err, ErrMisplaced) {
		t.Fatalf("tampered value: %v, want ErrTampered", err)
	}
	checked, fails, err := s.Verify(ctx)
	must(t, err)
	if checked != 1 || len(fails) != 1 || !errors.Is(fails[0].Err, ErrTampered) || !strings.Contains(fails[0].Place, dev1) {
		t.Errorf("Verify: %d checked, %+v", checked, fails)
	}
}

func TestTamperedCheckValue(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Close())
	flipBit(t, opts.Path, "master_keys", "check_sealed", -1)
	_, err := Open(ctx, opts)
	if !errors.Is(err, ErrTampered) || errors.Is(err, ErrWrongKey) {
		t.Fatalf("tampered check value: %v, want ErrTampered", err)
	}
}

func TestSwappedRows(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Secrets().SetPending(ctx, dev1, AMTAdmin, secret.FromString("A1!aaaaa"), ""))
	must(t, s.Secrets().SetPending(ctx, dev2, AMTAdmin, secret.FromString("B2!bbbbb"), ""))
	must(t, s.Domains().Put(ctx, Domain{Suffix: "corp.example.com", PFX: secret.FromString("pfx bytes"), PFXPassword: secret.FromString("pfx-pass")}, "test", ""))
	must(t, s.Close())
	// Give dev2 dev1's sealed password: the attacker knows dev1's, and wants dev2's used.
	tamper(t, opts.Path, `UPDATE device_secrets SET value_sealed = (SELECT value_sealed FROM device_secrets WHERE device = ?) WHERE device = ?`, dev1, dev2)
	// Copy a value into another column of the same row.
	tamper(t, opts.Path, `UPDATE domains SET pfx_password_sealed = pfx_sealed`)
	s, err := Open(ctx, opts)
	must(t, err)
	defer s.Close()
	_, err = s.Secrets().Candidates(ctx, dev2, AMTAdmin)
	if !errors.Is(err, ErrMisplaced) || errors.Is(err, ErrTampered) {
		t.Errorf("swapped row: %v, want ErrMisplaced", err)
	}
	_, err = s.Domains().Get(ctx, "corp.example.com")
	if !errors.Is(err, ErrMisplaced) {
		t.Errorf("copied column: %v, want ErrMisplaced", err)
	}
	if _, err := s.Secrets().Candidates(ctx, dev1, AMTAdmin); err != nil {
		t.Errorf("untouched row: %v", err)
	}
	_, fails, err := s.Verify(ctx)
	must(t, err)
	if len(fails) != 2 {
		t.Errorf("Verify: %+v", fails)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Close())
	db := rawDB(t, opts.Path)
	_, err := db.Exec(`PRAGMA user_version = 99`)
	must(t, err)
	db.Close()
	_, err = Open(ctx, opts)
	if !errors.Is(err, ErrTooNew) {
		t.Fatalf("Open newer db: %v", err)
	}
	for _, want := range []string{"schema version 99", fmt.Sprintf("up to %d", SchemaVersion())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestMigrationSnapshot(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Secrets().SetPending(ctx, dev1, AMTAdmin, secret.FromString("A1!aaaaa"), ""))
	// The store is at the newest version N; a migration N+1 is tried.
	n := SchemaVersion()
	shipped := fstest.MapFS{}
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	must(t, err)
	for _, name := range names {
		b, err := migrationFiles.ReadFile(name)
		must(t, err)
		shipped[name] = &fstest.MapFile{Data: b}
	}
	with := func(name, sql string) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range shipped {
			m[k] = v
		}
		m[fmt.Sprintf("migrations/%04d_%s.sql", n+1, name)] = &fstest.MapFile{Data: []byte(sql)}
		return m
	}
	if err := s.migrateWith(ctx, with("broken", "ALTER TABLE devices ADD COLUMN rack TEXT NOT NULL DEFAULT ''; CREATE TABLE oops (;"), opts.BackupDir); err == nil {
		t.Fatal("broken migration applied")
	}
	var v int
	must(t, s.db.QueryRow(`PRAGMA user_version`).Scan(&v))
	if _, err := s.db.Exec(`SELECT rack FROM devices`); v != n || err == nil {
		t.Fatalf("failed migration left version %d, rack column err %v", v, err)
	}
	must(t, s.migrateWith(ctx, with("rack", "ALTER TABLE devices ADD COLUMN rack TEXT NOT NULL DEFAULT '';"), opts.BackupDir))
	must(t, s.db.QueryRow(`PRAGMA user_version`).Scan(&v))
	if v != n+1 {
		t.Errorf("user_version %d after migration", v)
	}
	snaps, _ := filepath.Glob(filepath.Join(opts.BackupDir, fmt.Sprintf("amtd.db.*.pre-v%d-from-v%d", n+1, n)))
	if len(snaps) != 2 { // one before the broken attempt, one before the good one
		t.Fatalf("snapshots: %v", snaps)
	}
	fi, err := os.Stat(snaps[1])
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot mode %v", fi.Mode())
	}
	snap := rawDB(t, snaps[1])
	var sv, cnt int
	must(t, snap.QueryRow(`PRAGMA user_version`).Scan(&sv))
	must(t, snap.QueryRow(`SELECT count(*) FROM device_secrets`).Scan(&cnt))
	if sv != n || cnt != 1 {
		t.Errorf("snapshot: version %d, %d secrets", sv, cnt)
	}
}

func TestKeyFileChecks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "k")}
	must(t, GenerateKeyFile(opts.KeyFile))
	if err := GenerateKeyFile(opts.KeyFile); err == nil {
		t.Error("GenerateKeyFile overwrote a key")
	}
	fi, _ := os.Stat(opts.KeyFile)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new key mode %v", fi.Mode())
	}
	must(t, os.Chmod(opts.KeyFile, 0o640))
	_, err := Init(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+opts.KeyFile) {
		t.Fatalf("group-readable key: %v", err)
	}
	if _, err := os.Stat(opts.Path); !os.IsNotExist(err) {
		t.Error("Init created a database with a refused key")
	}
	must(t, os.Chmod(opts.KeyFile, 0o600))

	// 32 raw bytes and the same key in hex name the same key.
	hexKey, _ := os.ReadFile(opts.KeyFile)
	raw := make([]byte, 32)
	_, err = hexDecode(raw, bytes.TrimSpace(hexKey))
	must(t, err)
	rawPath := filepath.Join(dir, "raw")
	must(t, os.WriteFile(rawPath, raw, 0o400))
	k1, err := readKeyFile(opts.KeyFile)
	must(t, err)
	k2, err := readKeyFile(rawPath)
	must(t, err)
	if k1.id != k2.id {
		t.Error("raw and hex forms of one key differ")
	}
	k1.wipe()
	k2.wipe()
	for name, body := range map[string]string{"short": "abcd", "long": strings.Repeat("ab", 40), "nothex": strings.Repeat("zz", 32)} {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(body), 0o600))
		if _, err := readKeyFile(p); err == nil {
			t.Errorf("key file %s accepted", name)
		}
	}
	// The systemd credential directory.
	credDir := filepath.Join(dir, "creds")
	must(t, os.Mkdir(credDir, 0o700))
	must(t, os.WriteFile(filepath.Join(credDir, CredentialName), hexKey, 0o400))
	s, err := Init(ctx, Options{Path: opts.Path, CredentialsDir: credDir})
	must(t, err)
	must(t, s.Close())
	if _, err := Init(ctx, opts); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Init over an existing store: %v", err)
	}
	s, err = Open(ctx, opts) // the same key through KeyFile
	must(t, err)
	must(t, s.Health(ctx))
	must(t, s.Close())
	if err := s.Health(ctx); err == nil {
		t.Error("Health of a closed store")
	}
	if _, err := Open(ctx, Options{Path: filepath.Join(dir, "none.db"), KeyFile: opts.KeyFile}); err == nil || !strings.Contains(err.Error(), "amtd store init") {
		t.Errorf("Open of a missing store: %v", err)
	}
}

func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Secrets().SetPending(ctx, dev1, AMTAdmin, secret.FromString("A1!aaaaa"), ""))
	must(t, s.Secrets().Promote(ctx, dev1, AMTAdmin))
	must(t, s.Secrets().SetPending(ctx, dev1, AMTAdmin, secret.FromString("B2!bbbbb"), ""))
	must(t, s.Keys().Put(ctx, "tsig", KeyTSIG, secret.FromString("tsig-secret"), "t", ""))
	must(t, s.Domains().Put(ctx, Domain{Suffix: "corp.example.com", PFX: secret.FromString("pfx"), PFXPassword: secret.FromString("pw")}, "t", ""))
	oldID := s.KeyID()
	newKey := filepath.Join(t.TempDir(), "new.key")
	must(t, GenerateKeyFile(newKey))
	if _, err := s.RotateKey(ctx, opts.KeyFile, "t", ""); err == nil {
		t.Error("rotation to the same key")
	}
	n, err := s.RotateKey(ctx, newKey, "cli:root", "yearly")
	must(t, err)
	if n != 5 {
		t.Errorf("resealed %d values, want 5", n)
	}
	if s.KeyID() == oldID {
		t.Error("key id unchanged")
	}
	cs, err := s.Secrets().Candidates(ctx, dev1, AMTAdmin)
	must(t, err)
	if candidateStates(t, cs) != "current=A1!aaaaa pending=B2!bbbbb" {
		t.Errorf("after rotation: %s", candidateStates(t, cs))
	}
	must(t, s.Close())

	_, err = Open(ctx, opts) // the old key
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "retired") {
		t.Errorf("Open with retired key: %v", err)
	}
	opts.KeyFile = newKey
	s, err = Open(ctx, opts)
	must(t, err)
	defer s.Close()
	checked, fails, err := s.Verify(ctx)
	must(t, err)
	if checked != 5 || len(fails) != 0 {
		t.Errorf("Verify after rotation: %d checked, %v", checked, fails)
	}
	d, err := s.Domains().Get(ctx, "corp.example.com")
	must(t, err)
	if d.PFXPassword.RevealString() != "pw" {
		t.Error("domain password after rotation")
	}
	au, _ := s.AuditList(ctx, AuditQuery{Object: "master_key/" + oldID})
	if len(au) != 1 || au[0].Reason != "yearly" {
		t.Errorf("rotation audit: %+v", au)
	}
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Secrets().SetPending(ctx, dev1, MEBx, secret.FromString("M3bx!pass"), ""))
	out := filepath.Join(t.TempDir(), "copy.db")
	must(t, s.Backup(ctx, out))
	if err := s.Backup(ctx, out); err == nil {
		t.Error("Backup overwrote a file")
	}
	c, err := Open(ctx, Options{Path: out, KeyFile: opts.KeyFile})
	must(t, err)
	defer c.Close()
	cs, err := c.Secrets().Candidates(ctx, dev1, MEBx)
	must(t, err)
	if candidateStates(t, cs) != "pending=M3bx!pass" {
		t.Errorf("backup holds %s", candidateStates(t, cs))
	}
}

func TestDomainsProfilesAPIKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, s.Domains().Put(ctx, Domain{Suffix: "Corp.Example.com.", PFX: secret.New([]byte{0x30, 0x82, 0, 1}), PFXPassword: secret.FromString("pfxpw"),
		RootSHA256: "ABCDEF", LeafExpiry: exp, Metadata: json.RawMessage(`{"vendor":"DigiCert"}`)}, "t", "upload"))
	d, err := s.Domains().Get(ctx, "corp.example.com")
	must(t, err)
	if d.Suffix != "corp.example.com" || !bytes.Equal(d.PFX.Reveal(), []byte{0x30, 0x82, 0, 1}) || d.RootSHA256 != "abcdef" || !d.LeafExpiry.Equal(exp) {
		t.Errorf("domain: %+v", d)
	}
	ds, err := s.Domains().List(ctx)
	must(t, err)
	if len(ds) != 1 || !ds[0].PFX.IsZero() {
		t.Errorf("List: %+v", ds)
	}
	must(t, s.Profiles().Put(ctx, Profile{Name: "acm", Settings: json.RawMessage(`{"mode":"acm"}`)}, "t", ""))
	if err := s.Profiles().Put(ctx, Profile{Name: "bad", Settings: json.RawMessage(`{`)}, "t", ""); err == nil {
		t.Error("bad JSON accepted")
	}
	p, err := s.Profiles().Get(ctx, "acm")
	must(t, err)
	if string(p.Settings) != `{"mode":"acm"}` || string(p.MatchRules) != "[]" {
		t.Errorf("profile %+v", p)
	}
	must(t, s.Profiles().Delete(ctx, "acm", "t", ""))
	if _, err := s.Profiles().Get(ctx, "acm"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted profile: %v", err)
	}

	tok, k, err := s.APIKeys().Create(ctx, "console", RoleOperator, "cli:root", "")
	must(t, err)
	if !strings.HasPrefix(tok.RevealString(), "amtd_"+k.Prefix+"_") {
		t.Errorf("token shape")
	}
	got, err := s.APIKeys().Authenticate(ctx, tok)
	must(t, err)
	if got.ID != k.ID || got.Role != RoleOperator || got.LastUsed.IsZero() {
		t.Errorf("Authenticate: %+v", got)
	}
	forged := secret.FromString(tok.RevealString()[:len(tok.RevealString())-1] + "x")
	if _, err := s.APIKeys().Authenticate(ctx, forged); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("forged token: %v", err)
	}
	must(t, s.APIKeys().Revoke(ctx, k.ID, "cli:root", "left"))
	if _, err := s.APIKeys().Authenticate(ctx, tok); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("revoked token: %v", err)
	}
	var h []byte
	must(t, s.db.QueryRow(`SELECT sha256 FROM api_keys`).Scan(&h))
	if bytes.Contains(h, tok.Reveal()) || len(h) != 32 {
		t.Error("api key stored in the clear")
	}
}
