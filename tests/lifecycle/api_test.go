package lifecycle

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"amtd/amt/guid"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

// The console side of a CIRA site run by the real binary: the API over
// HTTPS with a key made by `amtd apikey create`, a device connected over
// CIRA from amtsim, `amtd devices` and `amtd forward` against it, and the
// CIRA, API and metrics sockets passed by systemd-socket-activate.

const (
	apiHost      = "amtd.lifecycle.test"
	apiDevice    = "4c4c4544-0042-3510-8052-b4c04f4e0801"
	apiMPSUser   = "amtlifecycle0001"
	apiMPSPass   = "Cira!Lifecycle-1"
	apiAdminPass = "P@ssw0rd1"
)

// apiSite is a site with [CIRA] and [API] on at the given addresses, the
// appliance CA made ahead (so the test trusts it) and one device recorded
// as activation leaves it: MPS credentials and its admin password.
type apiSite struct {
	*site
	root    *x509.Certificate
	rootDER []byte
}

func newAPISite(t *testing.T, cira, api, metrics string) *apiSite {
	t.Helper()
	s := newSite(t, "")
	text := fmt.Sprintf(`# written by tests/lifecycle (api_test.go)
[Site]
Domain=lifecycle.test
Hostname=%[1]s
Address=127.0.0.1
AllowRoot=yes

[Store]
Path=%[2]s/amtd.db
KeyFile=%[2]s/master.key

[Control]
Socket=%[2]s/control.sock

[DNS]
Enable=no

[DHCP]
Enable=no

[CIRA]
Enable=yes
Listen=%[3]s

[API]
Enable=yes
Listen=%[4]s
MetricsListen=%[5]s
`, apiHost, s.dir, cira, api, metrics)
	if err := os.WriteFile(s.conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(s.dir, "amtd.db"), KeyFile: filepath.Join(s.dir, "master.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ca, err := pki.Init(ctx, st, time.Now(), apiHost, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Devices().Put(ctx, store.Device{UUID: apiDevice, CIRA: store.CIRAState{MPSUsername: apiMPSUser}}); err != nil {
		t.Fatal(err)
	}
	for kind, pw := range map[store.SecretKind]string{store.MPS: apiMPSPass, store.AMTAdmin: apiAdminPass} {
		if err := st.Secrets().SetPending(ctx, apiDevice, kind, secret.FromString(pw), "test"); err != nil {
			t.Fatal(err)
		}
		if err := st.Secrets().Promote(ctx, apiDevice, kind); err != nil {
			t.Fatal(err)
		}
	}
	return &apiSite{site: s, root: ca.Root(), rootDER: ca.RootDER()}
}

// apiKey runs `amtd apikey create` and returns the token it prints.
func (s *apiSite) apiKey(role string) string {
	s.t.Helper()
	code, out, errs := run(s.t, nil, "apikey", "create", "--role", role, "--name", "lifecycle-"+role, "-c", s.conf)
	tok := strings.TrimSpace(out)
	if code != 0 || tok == "" || strings.Contains(tok, "\n") {
		s.t.Fatalf("amtd apikey create: exit %d\n%s%s", code, out, errs)
	}
	return tok
}

// client trusts only the appliance root, for the name apiHost.
func (s *apiSite) client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(s.root)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: apiHost}}
	s.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// get does GET https://addr/path with the token and decodes JSON into v; it
// returns the status.
func (s *apiSite) get(c *http.Client, addr, path, token string, v any) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest("GET", "https://"+addr+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, v); err != nil {
			s.t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode, string(body)
}

// startDevice starts an amtsim AMT 16.0, activated with apiAdminPass and
// configured for CIRA to ciraAddr as amtd's activation leaves it
// (spec/activation.md §9 step 4).
func (s *apiSite) startDevice(ciraAddr string) *amtsim.Device {
	t := s.t
	t.Helper()
	u, _ := guid.Parse(apiDevice)
	v, _ := amtsim.ParseVersion("16")
	d, err := amtsim.New(amtsim.Config{UUID: u, Version: v, Net: amtsim.NetIdentity{Suffix: "lifecycle.test"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ha1 := md5.Sum([]byte("admin:" + d.Realm() + ":" + apiAdminPass))
	if code := d.Setup(2, hex.EncodeToString(ha1[:])); code != 0 {
		t.Fatalf("Setup: %d", code)
	}
	if _, code := d.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(s.rootDER)); code != 0 {
		t.Fatalf("AddTrustedRootCertificate: %d", code)
	}
	sap, code := d.AddMpServer(amtsim.MPServer{AccessInfo: apiHost, InfoFormat: 201, Port: 4433, AuthMethod: 2,
		Username: apiMPSUser, Password: apiMPSPass, CN: apiHost})
	if code != 0 {
		t.Fatalf("AddMpServer: %d", code)
	}
	if _, code := d.AddRemoteAccessPolicyRule(2, 0, "AAAAAAAAABk=", sap); code != 0 {
		t.Fatalf("AddRemoteAccessPolicyRule: %d", code)
	}
	d.EnableCIRA(amtsim.CIRAOptions{DialAddr: ciraAddr, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	t.Cleanup(d.StopCIRA)
	return d
}

// apiDeviceRow is what the test reads of /api/v1/devices.
type apiDeviceRow struct {
	GUID             string `json:"guid"`
	ConnectionStatus bool   `json:"connectionStatus"`
	MPSUsername      string `json:"mpsusername"`
}

// TestAPIOverCIRA: the real binary with [CIRA] and [API] on. A key made by
// `amtd apikey create` lists the devices over HTTPS (appliance root, name
// [Site] Hostname=); an amtsim device connects over CIRA and the list shows
// it connected; its power state comes through the link; `amtd devices`
// shows the link; `amtd forward` (the binary) carries WS-Man to it; a
// viewer key is refused nothing it may read, and a bad one is refused.
func TestAPIOverCIRA(t *testing.T) {
	ciraAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := newAPISite(t, ciraAddr, apiAddr, metricsAddr)
	token := s.apiKey("viewer")
	n := listenNotify(t, s.dir)
	d := start(t, []string{"NOTIFY_SOCKET=" + n.path}, amtd, "run", "-c", s.conf)
	n.await(t, "READY=1", 30*time.Second)
	c := s.client()

	var devs []apiDeviceRow
	if code, body := s.get(c, apiAddr, "/api/v1/devices", token, &devs); code != 200 || len(devs) != 1 || devs[0].GUID != apiDevice || devs[0].ConnectionStatus {
		t.Fatalf("GET /api/v1/devices before the device connects: %d %s", code, body)
	}
	if code, body := s.get(c, apiAddr, "/api/v1/devices", "not-a-key", nil); code != 401 {
		t.Fatalf("GET /api/v1/devices with a bad key: %d %s", code, body)
	}
	if code, body := s.get(c, apiAddr, "/api/v1/amt/power/state/"+apiDevice, token, nil); code != 404 {
		t.Fatalf("power state of a device not connected: %d %s, want 404", code, body)
	}

	dev := s.startDevice(ciraAddr)
	// The relay writes link state every few seconds (spec/apf.md §10).
	deadline := time.Now().Add(60 * time.Second)
	for {
		devs = nil
		code, body := s.get(c, apiAddr, "/api/v1/devices?status=1", token, &devs)
		if code == 200 && len(devs) == 1 && devs[0].GUID == apiDevice && devs[0].ConnectionStatus && devs[0].MPSUsername == apiMPSUser {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/v1/devices?status=1 does not show the device connected after 60 s: %d %s (device says connected: %v)", code, body, dev.CIRAConnected())
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ps map[string]int
	if code, body := s.get(c, apiAddr, "/api/v1/amt/power/state/"+apiDevice, token, &ps); code != 200 || ps["powerstate"] != 2 {
		t.Fatalf("GET /api/v1/amt/power/state over CIRA: %d %s", code, body)
	}

	// The store has the link: amtd devices reads it.
	code, out, errs := run(t, nil, "devices", "list", "-c", s.conf)
	row := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, apiDevice) {
			row = strings.Join(strings.Fields(l), " ")
		}
	}
	if code != 0 || !strings.Contains(row, " up since ") || !strings.Contains(row, " 127.0.0.1:") || !strings.Contains(row, "16992,16993") {
		t.Fatalf("amtd devices list: exit %d, row %q\n%s%s", code, row, out, errs)
	}

	forwardWSMan(t, s, dev)

	// Metrics count the link.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "amtd_cira_connected_devices 1") {
		t.Fatalf("metrics lack amtd_cira_connected_devices 1:\n%s", body)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// forwardWSMan runs `amtd forward` (the binary) to the device's 16992 and
// reads AMT_GeneralSettings through it with digest, then stops it with
// SIGINT, as Ctrl-C does.
func forwardWSMan(t *testing.T, s *apiSite, dev *amtsim.Device) {
	t.Helper()
	cmd := exec.Command(amtd, "forward", apiDevice, "--port", "16992", "-c", s.conf)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	var addr string
	select {
	case l, ok := <-lines:
		f := strings.Fields(l)
		if !ok || len(f) < 2 || f[0] != "forwarding" {
			t.Fatalf("amtd forward: %q\n%s", l, stderr.String())
		}
		addr = f[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("amtd forward printed nothing in 30 s\n%s", stderr.String())
	}
	wc := wsman.NewClient(func(ctx context.Context) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", addr)
	}, wsman.Credentials{Host: apiDevice + ":16992", Username: "admin", Password: secret.FromString(apiAdminPass)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var gs wsman.Instance
	if err := wc.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatalf("WS-Man through amtd forward: %v\n%s", err, stderr.String())
	}
	if gs.Value("DigestRealm") != dev.Realm() {
		t.Fatalf("AMT_GeneralSettings through amtd forward: DigestRealm %q, want %q", gs.Value("DigestRealm"), dev.Realm())
	}
	cmd.Process.Signal(syscall.SIGINT)
	var printed []string
	for l := range lines {
		printed = append(printed, l)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("amtd forward after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("amtd forward still running 20 s after SIGINT")
	}
	if !slices.Contains(printed, "stopped") || !strings.Contains(strings.Join(printed, "\n"), "connection from 127.0.0.1:") {
		t.Fatalf("amtd forward printed:\n%s", strings.Join(printed, "\n"))
	}
}

// TestSocketActivationCIRAAndAPI: the sockets of amtd-cira.socket,
// amtd-api.socket and amtd-metrics.socket, passed by name, are the ones the
// services serve on, not Listen= (which name other ports); the first
// connection starts the daemon.
func TestSocketActivationCIRAAndAPI(t *testing.T) {
	sa := needSocketActivate(t)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")) }
	ciraSock, apiSock, metricsSock := addr(), addr(), addr()
	s := newAPISite(t, addr(), addr(), addr())
	token := s.apiKey("viewer")
	n := listenNotify(t, s.dir)
	d := start(t, nil, sa, "-l", ciraSock, "-l", apiSock, "-l", metricsSock, "--fdname=cira:api:metrics",
		"-E", "NOTIFY_SOCKET="+n.path, amtd, "run", "-c", s.conf)
	// systemd-socket-activate starts amtd on the first connection; the
	// request waits in the backlog meanwhile.
	var conn net.Conn
	var err error
	for range 100 {
		if conn, err = net.Dial("tcp", apiSock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("systemd-socket-activate did not listen on %s: %v", apiSock, err)
	}
	conn.Close()
	n.await(t, "READY=1", 30*time.Second)

	rep := statusJSON(t, s.control)
	want := map[string]string{"cira": ciraSock, "api": apiSock, "metrics": metricsSock}
	for _, sock := range rep.Sockets {
		if a, ok := want[sock.Name]; ok && sock.Activated && sock.Kind == "stream" && sock.Address == a {
			delete(want, sock.Name)
		}
	}
	if len(want) > 0 {
		t.Fatalf("not served from systemd's sockets: %v; amtd status lists %+v", want, rep.Sockets)
	}
	c := s.client()
	var stats map[string]int
	if code, body := s.get(c, apiSock, "/api/v1/devices/stats", token, &stats); code != 200 || stats["totalCount"] != 1 {
		t.Fatalf("API on the activated socket: %d %s", code, body)
	}
	resp, err := http.Get("http://" + metricsSock + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "amtd_cira_connected_devices") {
		t.Fatalf("metrics on the activated socket: %d\n%s", resp.StatusCode, body)
	}
	// CIRA answers TLS with the appliance certificate for [Site] Hostname=.
	pool := x509.NewCertPool()
	pool.AddCert(s.root)
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ciraSock, &tls.Config{RootCAs: pool, ServerName: apiHost})
	if err != nil {
		t.Fatalf("TLS to CIRA on the activated socket: %v", err)
	}
	tc.Close()
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
