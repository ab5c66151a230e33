package netsvc

import (
	"net/netip"
	"testing"
)

func TestHostsMoveAddressBetweenNames(t *testing.T) {
	h := NewHosts()
	a := netip.MustParseAddr("192.0.2.10")
	h.Set("PC1.site.example.com", a)
	if got := h.Lookup("pc1.SITE.example.com."); len(got) != 1 || got[0] != a {
		t.Fatalf("Lookup = %v", got)
	}
	// The lease moves to another host name: the old name must stop resolving.
	h.Set("pc2.site.example.com", a)
	if got := h.Lookup("pc1.site.example.com"); len(got) != 0 {
		t.Fatalf("old name still resolves to %v", got)
	}
	if got := h.Reverse(a); got != "pc2.site.example.com." {
		t.Fatalf("Reverse = %q", got)
	}
	h.Remove("pc2.site.example.com")
	if h.Len() != 0 || h.Reverse(a) != "" {
		t.Fatal("Remove left entries")
	}
}
