// Command amtsim runs one or thousands of simulated Intel AMT devices in one
// process, for testing amtd end to end and at fleet scale. See
// docs/amtsim.md.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"amtd/amt/guid"
	"amtd/amtsim"
)

const usage = `amtsim runs simulated Intel AMT devices (see docs/amtsim.md).

Usage: amtsim [flags]

Each device gets its own address (-addr-base, one loopback address per
device, AMT's real ports 16992-16995) or its own ports on one address
(-addr with -port-base: device i uses port-base+4i … +4i+3 for 16993, 16992,
16995, 16994). Settings persist per device in -state-dir (<uuid>.json), so
restarting amtsim with the same -seed and -state-dir is a reboot.

Examples:
  amtsim -count 1 -addr-base 127.10.0.1 -remote-config -dns 127.0.0.1:53 -suffix corp.example.com
  amtsim -count 5000 -versions 12,15,16.1,19 -no-listen -mps 127.0.0.1:4433 -state-dir /tmp/amtsim

Flags:
`

type options struct {
	count         int
	versions      string
	seed          string
	addrBase      string
	addr          string
	portBase      int
	noListen      bool
	stateDir      string
	mps           string
	ciraUser      bool
	dns           string
	suffix        string
	trustedSuffix string
	lease         string
	remoteConfig  bool
	rootHashes    string
	setupBin      string
	rpcURL        string
	rpcCommand    string
	rpcTenant     string
	rpcInsecure   bool
	odcaPath      string
	helloPort     int
	helloInterval time.Duration
	helloAttempts int
	helloWindow   time.Duration
	keyPool       int
	latency       time.Duration
	loadLatency   time.Duration
	dropAfter     int
	failMethod    string
	failCode      int
	maxPullItems  int
	verbose       bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("amtsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.count, "count", 1, "number of devices")
	fs.StringVar(&o.versions, "versions", "16", "AMT versions, comma-separated, assigned round-robin (11, 12, 15, 16 = 16.0, 16.1, 19, or a full 15.0.23.1706)")
	fs.StringVar(&o.seed, "seed", "amtsim", "seed of the device UUIDs: the same seed and count give the same devices")
	fs.StringVar(&o.addrBase, "addr-base", "", "first listen address; device i listens on the i-th address after it (e.g. 127.10.0.1)")
	fs.StringVar(&o.addr, "addr", "127.0.0.1", "listen address for all devices when -port-base is set")
	fs.IntVar(&o.portBase, "port-base", 0, "with -addr: device i listens on port-base+4i (16993), +1 (16992), +2 (16995), +3 (16994)")
	fs.BoolVar(&o.noListen, "no-listen", false, "open no LAN listeners (CIRA-only devices, for fleet-scale runs)")
	fs.StringVar(&o.stateDir, "state-dir", "", "directory for per-device settings files (empty: in memory, lost at exit)")
	fs.StringVar(&o.mps, "mps", "", "host:port to dial for CIRA instead of AddMpServer's address (the certificate is still checked against AccessInfo/CN)")
	fs.BoolVar(&o.ciraUser, "cira-user-initiated", false, "connect CIRA with a user-initiated rule too, as if the user asked")
	fs.StringVar(&o.dns, "dns", "", "DNS server host:port (DHCP option 6) for the ProvisionServer lookup")
	fs.StringVar(&o.suffix, "suffix", "", "DNS suffix (DHCP option 15)")
	fs.StringVar(&o.trustedSuffix, "trusted-suffix", "", "MEBx PKI DNS suffix; wins over -suffix for certificate matching")
	fs.StringVar(&o.lease, "lease", "", "dhclient lease file or udhcpc env dump to take IP, DNS and suffix from (single device)")
	fs.BoolVar(&o.remoteConfig, "remote-config", false, "open remote configuration (hellos and the mutual-TLS setup session) in pre-provisioning")
	fs.StringVar(&o.rootHashes, "root-hash", "", "user-added trusted root SHA-256 hashes, comma-separated hex (MEBx/USB)")
	fs.StringVar(&o.setupBin, "setup-bin", "", "USB setup.bin each device boots with: device i takes the next unconsumed record (as firmware does) and the file is written back")
	fs.StringVar(&o.rpcURL, "rpc", "", "run rpc-go's remote mode on each device's host against this server (wss://HOST:PORT/activate)")
	fs.StringVar(&o.rpcCommand, "rpc-command", "activate --profile default", "the rpc-go command to send with -rpc")
	fs.StringVar(&o.rpcTenant, "rpc-tenantid", "", "rpc-go's --tenantid (amtd's enrolment token) with -rpc")
	fs.BoolVar(&o.rpcInsecure, "rpc-skip-cert-check", false, "rpc-go's -n: do not verify the server's certificate")
	fs.StringVar(&o.odcaPath, "odca", "", "with -rpc, the simulated On-Die CA root (PEM certificate and key; created if missing, its certificate also written to FILE.crt for amtd to trust) that issues the local TLS chains of AMT 19+ devices; default: a new root each run")
	fs.IntVar(&o.helloPort, "hello-port", 9971, "port hellos are sent to (a setup.bin record's port wins)")
	fs.DurationVar(&o.helloInterval, "hello-interval", amtsim.DefaultHelloSchedule.Interval, "first interval between hellos, doubling (a guess: the real schedule is unverified)")
	fs.IntVar(&o.helloAttempts, "hello-attempts", amtsim.DefaultHelloSchedule.Attempts, "hellos per device at most")
	fs.DurationVar(&o.helloWindow, "hello-window", amtsim.DefaultHelloSchedule.Window, "time after which no more hellos are sent")
	fs.IntVar(&o.keyPool, "key-pool", 8, "RSA keys generated and shared by all devices (simulation shortcut)")
	fs.DurationVar(&o.latency, "latency", 0, "fault: latency added to every WS-Man call")
	fs.DurationVar(&o.loadLatency, "load-latency", 0, "fault: latency added per concurrent call on a device")
	fs.IntVar(&o.dropAfter, "drop-after", 0, "fault: drop the connection on every N-th WS-Man call")
	fs.StringVar(&o.failMethod, "fail-method", "", "fault: method (e.g. CommitChanges or AMT_SetupAndConfigurationService.CommitChanges) that returns -fail-code")
	fs.IntVar(&o.failCode, "fail-code", 1, "fault: ReturnValue of -fail-method")
	fs.IntVar(&o.maxPullItems, "max-pull-items", 0, "fault: cap items per Pull to force paging")
	fs.BoolVar(&o.verbose, "v", false, "debug logging")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "amtsim: unexpected argument %q (see amtsim -help)\n", fs.Arg(0))
		return 2
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runFleet(ctx, o, log); err != nil {
		fmt.Fprintln(stderr, "amtsim:", err)
		return 1
	}
	return 0
}

func deviceUUID(seed string, i int) guid.UUID {
	s := sha256.Sum256([]byte(seed + "/" + strconv.Itoa(i)))
	var u guid.UUID
	copy(u[:], s[:16])
	return u
}

func runFleet(ctx context.Context, o options, log *slog.Logger) error {
	if o.count < 1 || o.count > 1_000_000 {
		return fmt.Errorf("-count %d: want 1–1000000", o.count)
	}
	var versions []amtsim.Version
	for _, s := range strings.Split(o.versions, ",") {
		v, err := amtsim.ParseVersion(s)
		if err != nil {
			return err
		}
		versions = append(versions, v)
	}
	var hashes []amtsim.RootHash
	for _, h := range strings.Split(o.rootHashes, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if len(h) != 64 {
				return fmt.Errorf("-root-hash %q: want 64 hex digits (SHA-256 of the root DER)", h)
			}
			hashes = append(hashes, amtsim.RootHash{Algorithm: "sha256", Hex: strings.ToLower(h), Name: "user"})
		}
	}
	netID := amtsim.NetIdentity{Suffix: o.suffix}
	if o.dns != "" {
		ap, err := netip.ParseAddrPort(o.dns)
		if err != nil {
			a, err2 := netip.ParseAddr(o.dns)
			if err2 != nil {
				return fmt.Errorf("-dns %q: want host:port or an IP: %w", o.dns, err)
			}
			ap = netip.AddrPortFrom(a, 53)
		}
		netID.DNS = ap
	}
	if o.lease != "" {
		l, err := amtsim.ReadLease(o.lease)
		if err != nil {
			return err
		}
		if l.Suffix != "" {
			netID.Suffix = l.Suffix
		}
		if l.DNS.IsValid() && o.dns == "" {
			netID.DNS = l.DNS
		}
		netID.IP = l.IP
	}
	var base netip.Addr
	if o.addrBase != "" {
		a, err := netip.ParseAddr(o.addrBase)
		if err != nil {
			return fmt.Errorf("-addr-base: %w", err)
		}
		base = a
	}
	if o.stateDir != "" {
		if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
			return err
		}
	}
	faults := &amtsim.Faults{Latency: o.latency, LoadLatency: o.loadLatency, DropAfter: o.dropAfter, MaxPullItems: o.maxPullItems}
	if o.failMethod != "" {
		faults.FailMethod, faults.FailCode = o.failMethod, o.failCode
	}
	pool := amtsim.NewKeyPool(o.keyPool)
	sched := amtsim.HelloSchedule{Interval: o.helloInterval, MaxInterval: 10 * o.helloInterval, Attempts: o.helloAttempts, Window: o.helloWindow, Port: o.helloPort}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	addr := base
	var devices []*amtsim.Device
	for i := range o.count {
		id := netID
		if base.IsValid() {
			if i > 0 {
				addr = addr.Next()
			}
			if !id.IP.IsValid() || i > 0 {
				id.IP = addr
			}
		}
		cira := &amtsim.CIRAOptions{DialAddr: o.mps, UserInitiated: o.ciraUser}
		if id.IP.IsValid() && id.IP.IsLoopback() {
			cira.LocalAddr = id.IP.String()
		}
		d, err := amtsim.New(amtsim.Config{
			UUID: deviceUUID(o.seed, i), Version: versions[i%len(versions)], StateDir: o.stateDir,
			ExtraRootHashes: hashes, RemoteConfig: o.remoteConfig, TrustedDNSSuffix: o.trustedSuffix,
			Net: id, Keys: pool, Faults: faults, Logger: log, CIRA: cira,
		})
		if err != nil {
			return err
		}
		closers = append(closers, d.StopCIRA)
		devices = append(devices, d)
		usb := false
		if o.setupBin != "" {
			res, err := d.ApplySetupBinFile(o.setupBin)
			if err != nil {
				return fmt.Errorf("device %s: %w", d.UUID, err)
			}
			usb = true
			log.Info("setup.bin record taken", "uuid", d.UUID.String(), "record", res.Record, "suffix", res.Settings.PKIDNSSuffix)
		}
		if !o.noListen {
			var la amtsim.ListenAddrs
			switch {
			case base.IsValid():
				la = amtsim.LoopbackAddrs(addr.String())
			case o.portBase > 0:
				p := o.portBase + 4*i
				la = amtsim.ListenAddrs{TLS: fmt.Sprintf("%s:%d", o.addr, p), Plain: fmt.Sprintf("%s:%d", o.addr, p+1),
					RedirTLS: fmt.Sprintf("%s:%d", o.addr, p+2), Redir: fmt.Sprintf("%s:%d", o.addr, p+3)}
			default:
				return errors.New("listeners need -addr-base or -port-base (or -no-listen for CIRA-only devices)")
			}
			l, err := d.Listen(la)
			if err != nil {
				return err
			}
			closers = append(closers, func() { l.Close() })
			log.Info("device up", "uuid", d.UUID.String(), "version", d.Version.String(), "realm", d.Realm(), "tls", l.TLS.String())
		}
		// A setup.bin may name the server's address, so hellos need no DNS.
		if (o.remoteConfig && id.DNS.IsValid()) || usb {
			go d.RunHellos(ctx, sched)
		}
	}
	if o.rpcURL != "" {
		runRPC(ctx, o, devices, log)
	}
	log.Info("amtsim running", "devices", o.count)
	<-ctx.Done()
	return nil
}

// runRPC plays rpc-go on every device's host, 16 at a time, and logs how
// each session ended.
func runRPC(ctx context.Context, o options, devices []*amtsim.Device, log *slog.Logger) {
	var odca *amtsim.ODCA
	if o.odcaPath != "" {
		var err error
		if odca, err = amtsim.LoadODCA(o.odcaPath); err != nil {
			log.Error("rpc: no ODCA root", "err", err)
			return
		}
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, d := range devices {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := d.RunRPC(ctx, amtsim.RPCOptions{URL: o.rpcURL, Command: o.rpcCommand, TenantID: o.rpcTenant, Insecure: o.rpcInsecure, ODCA: odca})
			switch {
			case err != nil:
				log.Warn("rpc failed", "uuid", d.UUID.String(), "err", err)
			case m.Method == "success":
				log.Info("rpc success", "uuid", d.UUID.String(), "result", m.Message)
			default:
				log.Warn("rpc error", "uuid", d.UUID.String(), "message", m.Message)
			}
		})
	}
	wg.Wait()
}
