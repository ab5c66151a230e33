// Package ciraload measures the CIRA listener (netsvc/cira) at fleet scale:
// a server process running the service as the daemon does, and client
// processes playing thousands of AMT devices over loopback TLS. The test
// binary is all three: TestMain re-executes it with CIRALOAD_ROLE=server or
// client. BenchmarkFleet prints the figures (`make bench`); TestFleetSmoke
// runs the same harness with a few devices in `make test`.
package ciraload

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

func TestMain(m *testing.M) {
	switch os.Getenv("CIRALOAD_ROLE") {
	case "server":
		os.Exit(runServer())
	case "client":
		os.Exit(runClient())
	}
	os.Exit(m.Run())
}

const (
	deviceUser     = "amtload0123456"
	devicePassword = "Load-Pa55word-0123" // one for all: the check costs the same
	perClient      = 5000                 // devices per client process: well under the 20,000 fds a process may hold
)

// fleet is one run: a store with n devices, a server process, client
// processes.
type fleet struct {
	tb     testing.TB
	dir    string
	n      int
	ka     time.Duration // keep-alive interval the server asks for
	spread time.Duration // clients start their devices over this long
	addr   string
	srv    *proc
	cls    []*proc

	argonHash string // the store's hash of devicePassword
}

// newFleet makes the store: the appliance CA and n devices with MPS
// credentials. One device gets its password through the store's API (one
// argon2id hash); the others get copies of its rows, which costs the same
// to check and spares n hashes at setup.
func newFleet(tb testing.TB, n int, ka, spread time.Duration) *fleet {
	tb.Helper()
	ctx := context.Background()
	f := &fleet{tb: tb, dir: tb.TempDir(), n: n, ka: ka, spread: spread}
	opts := store.Options{Path: f.db(), KeyFile: f.key()}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		tb.Fatal(err)
	}
	st, err := store.Init(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := pki.Init(ctx, st, time.Now(), "", "ciraload")
	if err != nil {
		tb.Fatal(err)
	}
	root := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.RootDER()})
	if err := os.WriteFile(f.ca(), root, 0o600); err != nil {
		tb.Fatal(err)
	}
	tmpl := deviceUUID(0)
	if err := st.Devices().Put(ctx, store.Device{UUID: tmpl, CIRA: store.CIRAState{MPSUsername: deviceUser}}); err != nil {
		tb.Fatal(err)
	}
	if err := st.Secrets().SetPending(ctx, tmpl, store.MPS, secret.FromString(devicePassword), "ciraload"); err != nil {
		tb.Fatal(err)
	}
	if err := st.Secrets().Promote(ctx, tmpl, store.MPS); err != nil {
		tb.Fatal(err)
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	// The store package registered the sqlite3 driver.
	db, err := sql.Open("sqlite3", "file:"+f.db()+"?_foreign_keys=on&_journal_mode=WAL")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	for i := 1; i < n; i++ {
		u := deviceUUID(i)
		if _, err := tx.Exec(`INSERT INTO devices(uuid, mps_username, created, updated)
			SELECT ?, mps_username, created, updated FROM devices WHERE uuid = ?`, u, tmpl); err != nil {
			tb.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO device_secrets(device, kind, state, value_sealed, key_id, slow_hash, created)
			SELECT ?, kind, state, value_sealed, key_id, slow_hash, created FROM device_secrets WHERE device = ? AND kind = 'mps'`,
			u, tmpl); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	if err := db.QueryRow(`SELECT slow_hash FROM device_secrets WHERE device = ? AND kind = 'mps'`, tmpl).Scan(&f.argonHash); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f.addr = ln.Addr().String()
	ln.Close()
	tb.Cleanup(f.stop)
	return f
}

// cheapHash is the devices' password as an argon2id hash with the smallest
// parameters (8 KiB, one pass): the store's check reads the parameters from
// the hash, so it runs the same code in microseconds. It stands in for a
// cheap verifier (see useHash) and lets a cold start of thousands of
// devices be bounded by TLS and APF rather than by 19 MiB hashes.
func cheapHash() string {
	salt := []byte("ciraload-salt-16")
	sum := argon2.IDKey([]byte(devicePassword), salt, 1, 8, 1, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=8,t=1,p=1$%s$%s", argon2.Version, enc.EncodeToString(salt), enc.EncodeToString(sum))
}

// useHash sets every device's stored MPS hash: the store's own
// (19 MiB, 2 passes, as the daemon makes them) or cheapHash. The server
// reads it at each check, so a running server changes cost at once.
func (f *fleet) useHash(argon bool) {
	f.tb.Helper()
	h := cheapHash()
	if argon {
		h = f.argonHash
	}
	db, err := sql.Open("sqlite3", "file:"+f.db()+"?_busy_timeout=10000&_journal_mode=WAL")
	if err != nil {
		f.tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE device_secrets SET slow_hash = ? WHERE kind = 'mps'`, h); err != nil {
		f.tb.Fatal(err)
	}
}

func (f *fleet) db() string  { return filepath.Join(f.dir, "amtd.db") }
func (f *fleet) key() string { return filepath.Join(f.dir, "master.key") }
func (f *fleet) ca() string  { return filepath.Join(f.dir, "root.pem") }

// proc is a child process of the harness.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line
	stderr string      // file
	mu     sync.Mutex
	last   string // latest "stat" line (clients)
	done   chan struct{}
}

func (f *fleet) spawn(name string, env ...string) *proc {
	f.tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		f.tb.Fatal(err)
	}
	p := &proc{name: name, lines: make(chan string, 64), stderr: filepath.Join(f.dir, name+".stderr"), done: make(chan struct{})}
	p.cmd = exec.Command(exe, "-test.run=^$")
	// A harness killed outright takes its children with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Env = append(os.Environ(), env...)
	errf, err := os.Create(p.stderr)
	if err != nil {
		f.tb.Fatal(err)
	}
	defer errf.Close()
	p.cmd.Stderr = errf
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		f.tb.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		f.tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		f.tb.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "stat ") {
				p.mu.Lock()
				p.last = line
				p.mu.Unlock()
				continue
			}
			select {
			case p.lines <- line:
			default: // nobody asked
			}
		}
		_ = p.cmd.Wait()
	}()
	return p
}

// line waits for the process's next stdout line.
func (p *proc) line(limit time.Duration) (string, error) {
	select {
	case l := <-p.lines:
		return l, nil
	case <-p.done:
		return "", fmt.Errorf("%s exited (%v); stderr: %s", p.name, p.cmd.ProcessState, tail(p.stderr))
	case <-time.After(limit):
		return "", fmt.Errorf("%s: no answer in %v", p.name, limit)
	}
}

// end closes stdin and waits; a process that does not end is killed.
func (p *proc) end(limit time.Duration) {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once, as a crash or SIGKILL would.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// startServer starts the server process and waits for it to serve.
func (f *fleet) startServer() {
	f.tb.Helper()
	f.srv = f.spawn(fmt.Sprintf("server%d", time.Now().UnixNano()), "CIRALOAD_ROLE=server", "CIRALOAD_DB="+f.db(),
		"CIRALOAD_KEY="+f.key(), "CIRALOAD_LISTEN="+f.addr, "CIRALOAD_KEEPALIVE="+f.ka.String())
	l, err := f.srv.line(5 * time.Minute)
	if err != nil || l != "ready" {
		f.tb.Fatalf("server start: %q %v", l, err)
	}
}

// startClients starts ceil(n/perClient) client processes.
func (f *fleet) startClients() {
	for first := 0; first < f.n; first += perClient {
		count := min(perClient, f.n-first)
		f.cls = append(f.cls, f.spawn(fmt.Sprintf("client%d", first), "CIRALOAD_ROLE=client", "CIRALOAD_ADDR="+f.addr,
			"CIRALOAD_CA="+f.ca(), "CIRALOAD_USER="+deviceUser, "CIRALOAD_PASSWORD="+devicePassword,
			"CIRALOAD_FIRST="+strconv.Itoa(first), "CIRALOAD_COUNT="+strconv.Itoa(count), "CIRALOAD_SPREAD="+f.spread.String(),
			"CIRALOAD_TLS12="+os.Getenv("CIRALOAD_TLS12")))
	}
}

func (f *fleet) stop() {
	for _, c := range f.cls {
		c.end(30 * time.Second)
	}
	if f.srv != nil {
		f.srv.end(90 * time.Second)
	}
}

// stats asks the server for its figures.
func (f *fleet) stats() serverStats { return f.command("stats") }

// command sends the server a command and returns the figures it answers
// with.
func (f *fleet) command(cmd string) serverStats {
	f.tb.Helper()
	if _, err := io.WriteString(f.srv.stdin, cmd+"\n"); err != nil {
		f.tb.Fatalf("server: %v; stderr: %s", err, tail(f.srv.stderr))
	}
	l, err := f.srv.line(time.Minute)
	if err != nil {
		f.tb.Fatal(err)
	}
	var s serverStats
	if err := json.Unmarshal([]byte(l), &s); err != nil {
		f.tb.Fatalf("server stats %q: %v", l, err)
	}
	return s
}

// clientTotals sums the clients' latest stat lines.
func (f *fleet) clientTotals() map[string]int64 {
	out := map[string]int64{}
	for _, c := range f.cls {
		c.mu.Lock()
		line := c.last
		c.mu.Unlock()
		for _, kv := range strings.Fields(strings.TrimPrefix(line, "stat ")) {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			out[k] += n
		}
	}
	return out
}

// waitConnected polls the server until want devices are connected and
// returns how long it took; it fails the test after limit.
func (f *fleet) waitConnected(want int, limit time.Duration) time.Duration {
	f.tb.Helper()
	n, took := f.waitConnectedUpTo(want, limit)
	if n < want {
		f.tb.Fatalf("%d of %d devices connected after %v; clients %v; server stderr: %s", n, want, limit,
			f.clientTotals(), tail(f.srv.stderr))
	}
	return took
}

// waitConnectedUpTo polls the server until want devices are connected or
// limit has passed, and returns how many are and when it stopped.
func (f *fleet) waitConnectedUpTo(want int, limit time.Duration) (int, time.Duration) {
	f.tb.Helper()
	start := time.Now()
	for {
		s := f.stats()
		if s.Connected >= want || time.Since(start) > limit {
			return s.Connected, time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitClients polls the clients' totals until ok says yes, or fails after
// limit.
func (f *fleet) waitClients(what string, limit time.Duration, ok func(map[string]int64) bool) {
	f.tb.Helper()
	start := time.Now()
	for {
		tot := f.clientTotals()
		if ok(tot) {
			return
		}
		if time.Since(start) > limit {
			f.tb.Fatalf("clients: %s not reached after %v: %v", what, limit, tot)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// outcomes picks a counter vector's non-zero values by label value.
func outcomes(s serverStats, name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range s.Metrics {
		if rest, ok := strings.CutPrefix(k, name+"{"); ok && v > 0 {
			_, label, _ := strings.Cut(strings.TrimSuffix(rest, "}"), "=")
			out[strings.Trim(label, `"`)] = v
		}
	}
	return out
}

// procStat is what /proc says of a process.
type procStat struct {
	rssKiB   int64
	cpuTicks int64 // utime + stime, in USER_HZ (100 on Linux)
	fds      int
	threads  int64
}

func readProc(pid int) (procStat, error) {
	var ps procStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for line := range strings.Lines(string(status)) {
		k, v, _ := strings.Cut(line, ":")
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			ps.rssKiB, _ = strconv.ParseInt(fs[0], 10, 64)
		case "Threads":
			ps.threads, _ = strconv.ParseInt(fs[0], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// Fields after the command name (which may hold spaces): state is
	// field 3, utime 14, stime 15.
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(rest[11], 10, 64)
	stt, _ := strconv.ParseInt(rest[12], 10, 64)
	ps.cpuTicks = ut + stt
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return ps, err
	}
	ps.fds = len(ents)
	return ps, nil
}

const userHZ = 100

// TestFleetSmoke runs the harness with a few devices: they log in against
// the real store, keep their links with keep-alives, and log in again after
// the server is killed and restarted on the same port with the same store.
func TestFleetSmoke(t *testing.T) {
	const n = 6
	f := newFleet(t, n, time.Second, 0)
	f.startServer()
	f.startClients()
	f.waitConnected(n, 2*time.Minute)
	// Every device is asked for keep-alives and gets its answers.
	f.waitClients("keep-alive replies", 2*time.Minute, func(m map[string]int64) bool {
		return m["kaoption"] >= n && m["kareply"] >= 2*n
	})
	s := f.stats()
	if got := s.Metrics[`amtd_cira_connections_total{result="authenticated"}`]; got != n {
		t.Errorf("authenticated logins = %v, want %d", got, n)
	}
	if s.Metrics["amtd_cira_keepalives_total"] < n {
		t.Errorf("server answered %v keep-alives, want at least %d", s.Metrics["amtd_cira_keepalives_total"], n)
	}
	ps, err := readProc(f.srv.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if ps.rssKiB == 0 || ps.fds < n {
		t.Errorf("server /proc figures: %+v", ps)
	}

	f.srv.kill()
	f.startServer()
	f.waitConnected(n, 2*time.Minute)
	f.waitClients("logins after the restart", 2*time.Minute, func(m map[string]int64) bool {
		return m["logins"] >= 2*n && m["drops"] >= n && m["up"] == n
	})
	if got := f.stats().Metrics[`amtd_cira_connections_total{result="authenticated"}`]; got < n {
		t.Errorf("restarted server authenticated %v devices, want %d", got, n)
	}
}

// BenchmarkFleet holds CIRALOAD_DEVICES devices (default 19,000: the server
// process may hold at most 20,000 open files, a hard limit here) against one
// server process and prints what they cost it: RSS, heap and goroutines per
// device, CPU while idle with 30 s keep-alives (CIRALOAD_IDLE long), and the
// reconnect storm after the server is killed and restarted on the same port
// with the same store: once against a cheap hash (TLS and APF bound, what a
// cheap verifier would give), once against the store's argon2id hashes,
// cut after CIRALOAD_STORM_LIMIT (default 5m) with the rest extrapolated.
// The client processes share the machine with the server; their reconnect
// policy is reconnectBackoff; they speak Go's TLS 1.3 defaults, or TLS 1.2
// on P-256 as AMT does with CIRALOAD_TLS12=1. Run with -benchtime 1x.
func BenchmarkFleet(b *testing.B) {
	n := 19000
	if v := os.Getenv("CIRALOAD_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CIRALOAD_DEVICES=%q", v)
		}
	}
	idle := 30 * time.Second
	if v := os.Getenv("CIRALOAD_IDLE"); v != "" {
		var err error
		if idle, err = time.ParseDuration(v); err != nil {
			b.Fatalf("CIRALOAD_IDLE=%q", v)
		}
	}
	stormLimit := 5 * time.Minute
	if v := os.Getenv("CIRALOAD_STORM_LIMIT"); v != "" {
		var err error
		if stormLimit, err = time.ParseDuration(v); err != nil {
			b.Fatalf("CIRALOAD_STORM_LIMIT=%q", v)
		}
	}
	for b.Loop() {
		runFleet(b, n, idle, stormLimit)
	}
}

func runFleet(b *testing.B, n int, idle, stormLimit time.Duration) {
	f := newFleet(b, n, 30*time.Second, 10*time.Second)
	f.useHash(false)
	f.startServer()
	base, err := readProc(f.srv.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	baseStats := f.stats()
	pr := func(format string, args ...any) { fmt.Printf("ciraload: "+format+"\n", args...) }
	pr("%d devices, %d client processes, server pid %d (RSS %d KiB, %d goroutines before any device)",
		n, (n+perClient-1)/perClient, f.srv.cmd.Process.Pid, base.rssKiB, baseStats.Goroutines)

	// Cold start: every device logs in once, against the cheap hash, so
	// that holding the fleet does not wait on n argon2id checks.
	f.startClients()
	took := f.waitConnected(n, time.Hour)
	cold, _ := readProc(f.srv.cmd.Process.Pid)
	pr("cold start (cheap hash: TLS and APF bound): %d devices authenticated in %.1f s (%.0f logins/s; clients start over %v); "+
		"server CPU %.1f s (%.2f ms/login)", n, took.Seconds(), float64(n)/took.Seconds(), f.spread,
		float64(cold.cpuTicks-base.cpuTicks)/userHZ, 1000*float64(cold.cpuTicks-base.cpuTicks)/userHZ/float64(n))

	// Idle: links held, keep-alives every 30 s. Wait for every device's
	// keep-alive options exchange, then measure over idle.
	f.waitClients("keep-alive options", 10*time.Minute, func(m map[string]int64) bool { return m["kaoption"] >= int64(n) })
	time.Sleep(5 * time.Second)
	cpuProfile := os.Getenv("CIRALOAD_CPU")
	if cpuProfile != "" {
		f.command("cpustart " + cpuProfile)
	}
	s0 := f.stats()
	p0, _ := readProc(f.srv.cmd.Process.Pid)
	t0 := time.Now()
	time.Sleep(idle)
	if cpuProfile != "" {
		f.command("cpustop")
	}
	s1 := f.stats()
	p1, _ := readProc(f.srv.cmd.Process.Pid)
	el := time.Since(t0).Seconds()
	ct := f.clientTotals()
	if s1.Connected != n {
		b.Errorf("idle: %d of %d devices connected", s1.Connected, n)
	}
	cpu := float64(p1.cpuTicks-p0.cpuTicks) / userHZ / el
	kas := s1.Metrics["amtd_cira_keepalives_total"] - s0.Metrics["amtd_cira_keepalives_total"]
	writes := s1.Metrics["amtd_cira_link_writes_total"] - s0.Metrics["amtd_cira_link_writes_total"]
	// Settled: garbage collected and freed pages returned, so that what
	// remains is what the links hold (the logins' argon2id buffers, 19 MiB
	// each, otherwise linger until the runtime's scavenger gives them back).
	sf := f.command("free")
	pf, _ := readProc(f.srv.cmd.Process.Pid)
	if path := os.Getenv("CIRALOAD_HEAP"); path != "" {
		f.command("heap " + path)
	}
	rssPer := float64(pf.rssKiB-base.rssKiB) * 1024 / float64(n)
	heapPer := float64(sf.HeapInuse-baseStats.HeapInuse) / float64(n)
	stackPer := float64(sf.StackInuse-baseStats.StackInuse) / float64(n)
	gPer := float64(s1.Goroutines-baseStats.Goroutines) / float64(n)
	pr("idle: %d devices held; server RSS %d KiB as found, %d KiB settled (GC and freed pages returned): %.1f KiB/device over the "+
		"empty server (heap %.1f KiB, stacks %.1f KiB); %.2f goroutines/device, %d fds, %d threads",
		s1.Connected, p1.rssKiB, pf.rssKiB, rssPer/1024, heapPer/1024, stackPer/1024, gPer, p1.fds, p1.threads)
	pr("idle over %.0f s: server CPU %.2f%% of one core, %.0f keep-alives/s answered, %.0f link rows written to the store/s; "+
		"clients saw %d keep-alive replies, %d drops", el, 100*cpu, kas/el, writes/el, ct["kareply"], ct["drops"])
	pr("server-side link ends so far: %v", outcomes(s1, "amtd_cira_disconnects_total"))
	if ct["drops"] > 0 {
		for _, c := range f.cls {
			pr("%s stderr: %s", c.name, tail(c.stderr))
		}
	}
	pr("extrapolation (linear from these figures, not measured) to 100,000 devices: RSS %.2f GiB, %.0f goroutines, "+
		"idle CPU %.1f%% of one core; the server would also need LimitNOFILE above 100,000",
		(float64(base.rssKiB)*1024+rssPer*100000)/(1<<30), gPer*100000, 100*cpu*100000/float64(n))
	b.ReportMetric(float64(n), "devices")
	b.ReportMetric(rssPer, "RSS-B/device")
	b.ReportMetric(heapPer, "heap-B/device")
	b.ReportMetric(gPer, "goroutines/device")
	b.ReportMetric(100*cpu, "idle-CPU-%")

	// Reconnect storms: the server dies and comes back on the same port
	// with the same store; every device logs in again with backoff and
	// jitter. First with the cheap hash (what a cheap verifier would give),
	// then with the store's argon2id hashes, for at most stormLimit.
	ct = f.clientTotals()
	restart := func(label string, limit time.Duration) (int, time.Duration) {
		drops0, fails0 := ct["drops"], ct["fails"]
		start := time.Now()
		f.srv.kill()
		f.startServer()
		up := time.Since(start)
		r0, _ := readProc(f.srv.cmd.Process.Pid)
		got, took := f.waitConnectedUpTo(n, limit)
		took += up
		r1, _ := readProc(f.srv.cmd.Process.Pid)
		cpu := float64(r1.cpuTicks-r0.cpuTicks) / userHZ
		ct = f.clientTotals()
		pr("reconnect storm, %s: %d of %d devices authenticated again %.1f s after the kill (server up after %.1f s): %.1f logins/s; "+
			"server CPU %.1f s (%.1f ms/login, %.0f%% of 2 cores); connection outcomes %v; clients saw %d drops, %d failed attempts",
			label, got, n, took.Seconds(), up.Seconds(), float64(got)/took.Seconds(), cpu, 1000*cpu/float64(max(got, 1)),
			100*cpu/took.Seconds()/2, outcomes(f.stats(), "amtd_cira_connections_total"), ct["drops"]-drops0, ct["fails"]-fails0)
		return got, took
	}
	_, took = restart("cheap hash", time.Hour)
	b.ReportMetric(took.Seconds(), "storm-cheap-s")
	f.useHash(true)
	got, took := restart("argon2id as stored by amtd (19 MiB, 2 passes)", stormLimit)
	rate := float64(got) / took.Seconds()
	b.ReportMetric(rate, "storm-argon2-logins/s")
	if got < n {
		pr("the argon2id storm was cut at %v: at %.1f logins/s all %d devices would take about %.0f s (extrapolated, not measured)",
			stormLimit, rate, n, float64(n)/rate)
	}
	pr("extrapolation to 100,000 devices at the argon2id rate measured here: %.0f min to log all in again "+
		"(2 dedicated cores would run about 2 / (ms/login above) logins per second)", 100000/rate/60)
	f.stop()
}
