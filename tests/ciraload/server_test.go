package ciraload

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/netsvc/cira"
	"amtd/store"
)

// The server role: the CIRA service as the daemon runs it (real store,
// argon2id password checks, the appliance CA), alone in its process so that
// its RSS, CPU and fds are its own. It prints "ready" once serving, answers
// "stats" on stdin with one JSON line, and closes the service when stdin
// closes.

const serverName = "amtd.load.example"

// serverStats is the server's answer to "stats".
type serverStats struct {
	Connected  int                `json:"connected"`
	Goroutines int                `json:"goroutines"`
	HeapInuse  uint64             `json:"heap_inuse"`
	StackInuse uint64             `json:"stack_inuse"`
	Sys        uint64             `json:"sys"`
	Metrics    map[string]float64 `json:"metrics"` // amtd_cira_* samples by name{labels}
}

func runServer() int {
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "ciraload server:", err)
		return 2
	}
	ka, err := time.ParseDuration(os.Getenv("CIRALOAD_KEEPALIVE"))
	if err != nil {
		return fail(err)
	}
	st, err := store.Open(ctx, store.Options{Path: os.Getenv("CIRALOAD_DB"), KeyFile: os.Getenv("CIRALOAD_KEY")})
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	cfg := &config.Config{
		Site: config.Site{Hostname: serverName, Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		CIRA: config.CIRA{Enable: true, Listen: os.Getenv("CIRALOAD_LISTEN"), KeepAlive: ka, IdleTimeout: 3 * ka},
	}
	reg := metrics.NewRegistry()
	lis := netsvc.NewListeners(nil)
	defer lis.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := cira.New(cfg, netsvc.Deps{Log: log, Store: st, Metrics: reg, Listeners: lis})
	if err != nil {
		return fail(err)
	}
	if err := svc.Start(ctx); err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	var cpuFile *os.File
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "free":
			// Collect and return freed pages to the OS: what the links
			// themselves hold, without the garbage of the logins' argon2id
			// checks (19 MiB each) that the runtime has not given back yet.
			debug.FreeOSMemory()
		case "cpustart":
			if f, err := os.Create(arg); err == nil {
				cpuFile = f
				_ = pprof.StartCPUProfile(f)
			}
		case "cpustop":
			if cpuFile != nil {
				pprof.StopCPUProfile()
				cpuFile.Close()
			}
		case "heap":
			if f, err := os.Create(arg); err == nil {
				runtime.GC()
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		// Every command is answered with the figures.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		out := serverStats{Connected: svc.ConnectedDevices(), Goroutines: runtime.NumGoroutine(), HeapInuse: ms.HeapInuse,
			StackInuse: ms.StackInuse, Sys: ms.Sys, Metrics: samples(reg)}
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := svc.Close(cctx); err != nil {
		return fail(err)
	}
	return 0
}

// samples reads the registry's amtd_cira_* samples.
func samples(reg *metrics.Registry) map[string]float64 {
	var buf bytes.Buffer
	_ = reg.WriteText(&buf)
	out := map[string]float64{}
	for line := range strings.Lines(buf.String()) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "amtd_cira") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
