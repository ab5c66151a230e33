package wsman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amtd/amt/digest"
	"amtd/secret"
)

const testRealm = "Digest:56ABC7BE224EF620C69EB88F01071DC8"

// fakeAMT is an in-process AMT: digest auth with digest.Server, requests
// parsed with ParseRequest, answers from the fixture files or written with
// the response writers, always chunked as AMT answers.
type fakeAMT struct {
	t       *testing.T
	fx      string
	dig     *digest.Server
	creds   digest.Credentials
	mu      sync.Mutex
	now     time.Time
	n401    atomic.Int32
	stale   atomic.Int32
	seen    []*Message
	chunked atomic.Bool
	hang    chan struct{}
	// closeAfter answers every request with Connection: close.
	closeAfter atomic.Bool
}

func newFakeAMT(t *testing.T) (*fakeAMT, *httptest.Server) {
	f := &fakeAMT{t: t, fx: fixtureDir(t), dig: digest.NewServer(testRealm), now: time.Unix(1_800_000_000, 0)}
	f.creds = digest.PasswordCredentials("admin", testRealm, secret.FromString("P@ssw0rd1"))
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAMT) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeAMT) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeAMT) fixture(rel string) []byte {
	b, err := os.ReadFile(filepath.Join(f.fx, rel))
	if err != nil {
		f.t.Error(err)
	}
	return b
}

func (f *fakeAMT) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked" {
		f.chunked.Store(true)
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Server", "Intel(R) Active Management Technology 15.0.23.1706")
	if f.closeAfter.Load() {
		w.Header().Set("Connection", "close")
	}
	if _, err := f.dig.Verify(f.clock(), r.Method, r.Header.Get("Authorization"), f.creds); err != nil {
		f.n401.Add(1)
		stale := errors.Is(err, digest.ErrStale)
		if stale {
			f.stale.Add(1)
		}
		w.Header().Set("WWW-Authenticate", f.dig.Challenge(f.clock(), stale))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	req, err := ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.mu.Lock()
	f.seen = append(f.seen, req)
	f.mu.Unlock()
	reply := ReplyTo(req, uint64(len(f.seen)))
	var out []byte
	status := http.StatusOK
	switch {
	case req.Header.Action == ActionGet && req.Class() == "AMT_GeneralSettings":
		out = f.fixture("amt/general/get.xml")
	case req.Header.Action == ActionGet && req.Class() == "AMT_Hang":
		<-f.hang
		return
	case req.Header.Action == ActionGet:
		status = http.StatusBadRequest
		out = WriteFault(reply, &Fault{Code: "a:Sender", Subcode: "b:DestinationUnreachable", Reason: "No route can be determined to reach the destination role defined by the WS-Addressing To."})
	case req.Header.Action == ActionEnumerate:
		out = WriteEnumerateResponse(reply, "page-0")
	case req.Header.Action == ActionPull:
		// Serve the 11 CIM_SoftwareIdentity items of the fixture in pages of 4.
		m, err := ParseResponse(f.fixture("cim/software/identity/pull.xml"))
		if err != nil {
			f.t.Error(err)
			return
		}
		var page int
		fmt.Sscanf(req.EnumerationContext, "page-%d", &page)
		lo, hi := page*4, min(page*4+4, len(m.Instances))
		out = WritePullResponse(reply, m.Instances[lo:hi], fmt.Sprintf("page-%d", page+1), hi == len(m.Instances))
	case strings.HasSuffix(req.Header.Action, "/Setup"):
		out = f.fixture("ips/hostbasedsetup/setup.xml")
	case strings.HasSuffix(req.Header.Action, "/AdminSetup"):
		out = WriteMethodResponse(reply, Instance{Class: "AdminSetup_OUTPUT", Namespace: req.Header.ResourceURI,
			Props: []Property{{Name: "ReturnValue", Value: "5"}}})
	default:
		status = http.StatusNotFound
		out = []byte("no such thing")
	}
	w.WriteHeader(status)
	// Two writes with a flush between make net/http answer chunked.
	half := len(out) / 2
	w.Write(out[:half])
	w.(http.Flusher).Flush()
	w.Write(out[half:])
}

func dialer(srv *httptest.Server) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}
}

func newTestClient(srv *httptest.Server, pass string, opts ...Option) *Client {
	return NewClient(dialer(srv), Credentials{Host: "4c4c4544-0042-3010-8051-b4c04f4b4e32:16992", Username: "admin", Password: secret.FromString(pass)}, opts...)
}

func TestClientDigestGet(t *testing.T) {
	amt, srv := newFakeAMT(t)
	c := newTestClient(srv, "P@ssw0rd1")
	ctx := context.Background()
	var gs AMTGeneralSettings
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	if gs.DigestRealm != "Digest:F3EB554784E729164447A89F60B641C5" || gs.InstanceID != "Intel(r) AMT: General Settings" {
		t.Fatalf("got %+v", gs)
	}
	if n := amt.n401.Load(); n != 1 {
		t.Fatalf("first call took %d 401s, want exactly the initial challenge", n)
	}
	// Later calls reuse the nonce with nc+1: no more 401s.
	for range 3 {
		if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
			t.Fatal(err)
		}
	}
	if n := amt.n401.Load(); n != 1 {
		t.Fatalf("%d 401s after reuse, want 1", n)
	}
	if amt.chunked.Load() {
		t.Error("request was chunked without WithChunked")
	}
}

func TestClientStaleNonce(t *testing.T) {
	amt, srv := newFakeAMT(t)
	c := newTestClient(srv, "P@ssw0rd1")
	ctx := context.Background()
	var gs AMTGeneralSettings
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	amt.advance(10 * time.Minute) // past the server's nonce lifetime
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatalf("after nonce expiry: %v", err)
	}
	if amt.stale.Load() != 1 {
		t.Fatalf("stale challenges %d, want 1", amt.stale.Load())
	}
}

func TestClientWrongPassword(t *testing.T) {
	amt, srv := newFakeAMT(t)
	c := newTestClient(srv, "wrong")
	var gs AMTGeneralSettings
	err := c.Get(context.Background(), "AMT_GeneralSettings", &gs)
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("err = %v, want ErrWrongPassword", err)
	}
	if !strings.Contains(err.Error(), "wrong AMT password for 4c4c4544-0042-3010-8051-b4c04f4b4e32:16992") {
		t.Errorf("error %q does not name the host", err)
	}
	if strings.Contains(err.Error(), "wrong\"") || amt.n401.Load() != maxAuthAttempts {
		t.Errorf("401s = %d, want %d", amt.n401.Load(), maxAuthAttempts)
	}
}

func TestClientEnumeratePages(t *testing.T) {
	amt, srv := newFakeAMT(t)
	c := newTestClient(srv, "P@ssw0rd1", WithChunked())
	items, err := c.Enumerate(context.Background(), "CIM_SoftwareIdentity")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 11 {
		t.Fatalf("got %d items, want the fixture's 11", len(items))
	}
	var amtVersion string
	for i := range items {
		var si CIMSoftwareIdentity
		if err := Decode(&items[i], &si); err != nil {
			t.Fatal(err)
		}
		if si.InstanceID == "AMT" {
			amtVersion = si.VersionString
		}
	}
	if amtVersion == "" {
		t.Error("no AMT VersionString among the items")
	}
	// Enumerate + 3 pulls (4+4+3 items), each with the context of the last.
	var pulls []string
	for _, m := range amt.seen {
		if m.Kind == KindPullRequest {
			pulls = append(pulls, m.EnumerationContext)
		}
	}
	if strings.Join(pulls, ",") != "page-0,page-1,page-2" {
		t.Errorf("pull contexts %v", pulls)
	}
	if !amt.chunked.Load() {
		t.Error("WithChunked did not chunk the request")
	}
}

func TestClientInvoke(t *testing.T) {
	amt, srv := newFakeAMT(t)
	c := newTestClient(srv, "P@ssw0rd1")
	ctx := context.Background()
	in := SetupInput{NetAdminPassEncryptionType: 2, NetworkAdminPassword: secret.FromString("f73b2c17b1ecbd7a235ec37d66cbed71")}
	var out SetupOutput
	if err := c.Invoke(ctx, "IPS_HostBasedSetupService", "Setup", in.Params(), &out); err != nil {
		t.Fatal(err)
	}
	last := amt.seen[len(amt.seen)-1]
	if last.Method == nil || last.Method.Class != "Setup_INPUT" ||
		last.Method.Value("NetAdminPassEncryptionType") != "2" || last.Method.Props[1].Name != "NetworkAdminPassword" {
		t.Fatalf("server saw %+v", last.Method)
	}
	// A non-zero ReturnValue is a ReturnError with the family's name.
	err := c.Invoke(ctx, "IPS_HostBasedSetupService", "AdminSetup", nil, nil)
	var re *ReturnError
	if !errors.As(err, &re) || re.Code != 5 || !strings.Contains(err.Error(), "AuthFailed") {
		t.Fatalf("err = %v, want ReturnError 5 AuthFailed", err)
	}
}

func TestClientFaultAndStatus(t *testing.T) {
	_, srv := newFakeAMT(t)
	c := newTestClient(srv, "P@ssw0rd1")
	var inst Instance
	err := c.Get(context.Background(), "AMT_Missing", &inst)
	var f *Fault
	if !errors.As(err, &f) {
		t.Fatalf("err = %v, want *Fault", err)
	}
	if f.Class != "AMT_Missing" || f.Action != "Get" || f.SubcodeLocal() != "DestinationUnreachable" || !strings.Contains(f.Reason, "No route") {
		t.Fatalf("fault %+v", f)
	}
	if !strings.Contains(err.Error(), "AMT_Missing Get fault b:DestinationUnreachable") {
		t.Errorf("error text %q", err)
	}
	err = c.Invoke(context.Background(), "AMT_Nothing", "Frob", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "HTTP 404 Not Found") {
		t.Fatalf("err = %v, want the status line", err)
	}
}

func TestClientDeadline(t *testing.T) {
	amt, srv := newFakeAMT(t)
	amt.hang = make(chan struct{})
	defer close(amt.hang)
	c := newTestClient(srv, "P@ssw0rd1")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var inst Instance
	start := time.Now()
	err := c.Get(ctx, "AMT_Hang", &inst)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("call outlived its deadline by seconds")
	}
}
