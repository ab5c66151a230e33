package store

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"
)

// testOptions makes a fresh key file in a temp dir and returns options for
// a store next to it.
func testOptions(t testing.TB) Options {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "master.key")
	if err := GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	return Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: key, BackupDir: filepath.Join(dir, "backup")}
}

// newTestStore creates and opens a new store; it is closed at cleanup.
func newTestStore(t testing.TB) (*Store, Options) {
	t.Helper()
	opts := testOptions(t)
	s, err := Init(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, opts
}

func hexDecode(dst, src []byte) (int, error) { return hex.Decode(dst, src) }
