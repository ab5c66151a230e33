package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"amtd/secret"
	"amtd/store"
)

func TestStoreChains(t *testing.T) {
	st := testStore(t)
	ctx := context.Background()
	chain := newChain(t, "corp.example.com")
	opened := 0
	src := &StoreChains{Store: st, Open: func(pfx, pw []byte) (tls.Certificate, *x509.Certificate, error) {
		opened++
		if string(pw) != "pfx-pass" {
			return tls.Certificate{}, nil, errors.New("wrong password")
		}
		if string(pfx) != "pfx v1" && string(pfx) != "pfx v2" {
			return tls.Certificate{}, nil, errors.New("not the stored bytes")
		}
		return chain.cert, chain.root, nil
	}}
	put := func(pfx, pw string) {
		t.Helper()
		if err := st.Domains().Put(ctx, store.Domain{Suffix: "corp.example.com", PFX: secret.FromString(pfx), PFXPassword: secret.FromString(pw),
			LeafExpiry: time.Now().Add(time.Hour)}, "test", ""); err != nil {
			t.Fatal(err)
		}
	}
	if cs, err := src.Chains(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("empty store: %v %v", cs, err)
	}
	put("pfx v1", "pfx-pass")
	for range 3 {
		cs, err := src.Chains(ctx)
		if err != nil || len(cs) != 1 || cs[0].Suffix != "corp.example.com" || cs[0].Root != chain.root {
			t.Fatalf("chains %v %v", cs, err)
		}
	}
	if opened != 1 {
		t.Fatalf("the .pfx was opened %d times for one version", opened)
	}
	time.Sleep(2 * time.Millisecond) // a distinct updated stamp
	put("pfx v2", "pfx-pass")
	if _, err := src.Chains(ctx); err != nil || opened != 2 {
		t.Fatalf("after replace: opened %d, %v", opened, err)
	}
	time.Sleep(2 * time.Millisecond)
	put("pfx v2", "wrong")
	if _, err := src.Chains(ctx); err == nil || !strings.Contains(err.Error(), "domain corp.example.com: its provisioning certificate does not open") {
		t.Fatalf("broken pfx: %v", err)
	}
	if err := st.Domains().Delete(ctx, "corp.example.com", "test", ""); err != nil {
		t.Fatal(err)
	}
	if cs, err := src.Chains(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("after remove: %v %v", cs, err)
	}
}
