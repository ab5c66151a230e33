package api

import (
	"bytes"
	"crypto/sha256"
	"io"
	"strings"
	"testing"

	"amtd/amt/redir"
	"amtd/amtsim"
	"amtd/store"
)

// TestRelayIDER: an IDE-R session through amtd carries data both ways
// intact. The console sends 2 MiB in writes of odd sizes; the simulated
// device hashes what arrives and answers each read with as many bytes of
// its IDE-R pattern. Both directions are checked by SHA-256 against what
// the other end sent; the pattern is not the console's bytes nor KVM's, so
// a relay that looped the console's data back or crossed sessions fails.
// redirectstatus shows the IDE-R session, and its end is audited.
func TestRelayIDER(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	d := ce.device(t, simUUID)
	enableRedirection(t, ce.cira, simUUID)
	op, viewer := ce.key(store.RoleOperator, "op"), ce.key(store.RoleViewer, "viewer")
	s := ce.relaySession(op, simUUID, redir.SessionIDER, "ider")
	defer s.Close()
	if got := ce.redirectStatus(viewer, simUUID); !got["isIDERConnected"] || got["isKVMConnected"] || got["isSOLConnected"] {
		t.Fatalf("redirectstatus with IDE-R open: %v", got)
	}

	const total = 2 << 20
	sent := sha256.New()
	done := make(chan error, 1)
	go func() {
		// Sizes that divide nothing in the path: a 512-byte sector, a
		// WebSocket frame, an APF window.
		sizes := []int{1, 511, 4099, 65537, 3000}
		b := make([]byte, 65537)
		for i, k := 0, 0; i < total; k++ {
			n := min(sizes[k%len(sizes)], total-i)
			for j := range b[:n] {
				b[j] = byte((i+j)*13 + (i+j)>>9)
			}
			sent.Write(b[:n])
			if _, err := s.Write(b[:n]); err != nil {
				done <- err
				return
			}
			i += n
		}
		done <- nil
	}()

	got, want := sha256.New(), sha256.New()
	buf, pat := make([]byte, 32<<10), make([]byte, 32<<10)
	for off := 0; off < total; {
		k := min(len(buf), total-off)
		if _, err := io.ReadFull(s.R, buf[:k]); err != nil {
			t.Fatalf("IDE-R stream from the device at %d: %v", off, err)
		}
		amtsim.IDERPattern(pat[:k], uint64(off))
		got.Write(buf[:k])
		want.Write(pat[:k])
		off += k
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a, b := got.Sum(nil), want.Sum(nil); !bytes.Equal(a, b) {
		t.Fatalf("device → console: %d bytes with SHA-256 %x, the device sent %x", total, a, b)
	}
	var wantIn [32]byte
	copy(wantIn[:], sent.Sum(nil))
	// Every byte the console sent was answered, so the device has them all.
	if n, sum := d.IDERInput(); n != total || sum != wantIn {
		t.Fatalf("console → device: the device received %d bytes, SHA-256 %x; the console sent %d, %x", n, sum, total, wantIn)
	}
	if n, _ := d.KVMInput(); n != 0 {
		t.Fatalf("IDE-R bytes counted as KVM input: %d", n)
	}

	s.Close()
	waitUntil(t, "the IDE-R session's end in the audit trail", func() bool { return len(ce.auditRows("relay.end")) == 1 })
	if end := ce.auditRows("relay.end")[0].Result; !strings.HasPrefix(end, "ok mode=ider closed_by=console") {
		t.Fatalf("IDE-R end audited as %q", end)
	}
	waitUntil(t, "redirectstatus to drop the IDE-R session", func() bool { return !ce.redirectStatus(viewer, simUUID)["isIDERConnected"] })
}
