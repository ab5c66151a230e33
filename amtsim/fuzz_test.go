package amtsim

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"amtd/amt/wsman"
)

// FuzzDispatch feeds arbitrary envelopes to a provisioned device's WS-Man
// dispatcher: any input gets an HTTP status and a body, never a panic.
func FuzzDispatch(f *testing.F) {
	var b wsman.Builder
	for _, class := range []string{"AMT_GeneralSettings", "AMT_TLSSettingData", "IPS_OptInService", "AMT_Nope"} {
		r, _ := b.Get(class)
		f.Add(r.Body)
		r, _ = b.Enumerate(class)
		f.Add(r.Body)
	}
	r, _ := b.Pull("CIM_SoftwareIdentity", "00000001-0000-0000-0000-000000000000")
	f.Add(r.Body)
	r, _ = b.Invoke("AMT_AuthorizationService", "SetAdminAclEntryEx", wsman.SetAdminAclEntryExInput{Username: "admin"}.Params())
	f.Add(r.Body)
	d := newTestDevice(f, Config{})
	d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1"))
	f.Fuzz(func(t *testing.T, body []byte) {
		status, out := d.Dispatch(body, Session{})
		if status != 200 && status != 400 || len(out) == 0 {
			t.Fatalf("status %d, %d bytes", status, len(out))
		}
	})
}

// FuzzServeRedirection sends arbitrary bytes to a redirection session:
// the device answers or hangs up, within its deadline, without panicking.
func FuzzServeRedirection(f *testing.F) {
	f.Add([]byte{0x10, 0, 0, 0, 'S', 'O', 'L', ' ', 0x13, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x10, 1, 0, 0, 'K', 'V', 'M', 'R', 0x13, 0, 0, 0, 4, 5, 0, 0, 0, 5, 'a', 'd', 'm', 'i', 'n'})
	f.Add([]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF})
	d := newTestDevice(f, Config{})
	d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1"))
	d.mu.Lock()
	d.s.RedirectionState, d.s.RedirListener, d.s.KVMState = 32771, true, 2
	d.mu.Unlock()
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() { d.ServeRedirection(a); close(done) }()
		go func() { _, _ = io.Copy(io.Discard, b) }()
		_ = b.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(b, bytes.NewReader(in))
		b.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("session did not end after the peer closed")
		}
	})
}
