// Command relayclient plays a console against amtd's redirection relay:
// it asks for a redirection token with an operator API key, opens
// wss://AMTD/relay/webrelay.ashx for the device, authenticates with an
// empty user and password (amtd injects the AMT admin's), then reads the
// KVM stream (checked against amtsim's pattern when -check is set) or
// echoes a SOL line, and prints what happened. `make demo` runs it.
//
//	relayclient -url https://127.0.0.1:13000 -key TOKEN -cacert ca.pem -device GUID -mode kvm -bytes 4194304
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"amtd/amt/redir"
	"amtd/amtsim"
	"amtd/tests/tools/relayclient"
)

func main() {
	base := flag.String("url", "https://127.0.0.1:13000", "amtd's API `URL`")
	key := flag.String("key", os.Getenv("AMTD_API_KEY"), "an operator API `TOKEN` (amtd apikey create --role operator); default $AMTD_API_KEY")
	caFile := flag.String("cacert", "", "PEM `FILE` with amtd's root (GET /api/v1/ciracert); empty: the system roots")
	device := flag.String("device", "", "the device `GUID`")
	mode := flag.String("mode", "kvm", "kvm or sol")
	n := flag.Int("bytes", 4<<20, "KVM bytes to read")
	check := flag.Bool("check", false, "check the KVM stream against amtsim's pattern")
	text := flag.String("text", "hello from the console\r\n", "SOL text to send and read back (amtsim echoes)")
	flag.Parse()
	if err := run(*base, *key, *caFile, *device, *mode, *n, *check, *text); err != nil {
		fmt.Fprintln(os.Stderr, "relayclient:", err)
		os.Exit(1)
	}
}

func run(base, key, caFile, device, mode string, n int, check bool, text string) error {
	if key == "" || device == "" {
		return errors.New("-key and -device are required")
	}
	tcfg := &tls.Config{}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no PEM certificate", caFile)
		}
		tcfg.RootCAs = pool
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg}, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	tok, err := relayclient.Token(ctx, hc, base, key, device)
	if err != nil {
		return err
	}
	fmt.Printf("token: GET /api/v1/authorize/redirection/%s -> a one-use token (%d bytes, valid 5 min)\n", device, len(tok))
	c, err := relayclient.Dial(ctx, u.Host, tcfg, tok, device, mode, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("relay: wss://%s/relay/webrelay.ashx?p=2&host=%s&port=16994&tls=0&tls1only=0&mode=%s -> 101, token selected as subprotocol\n", u.Host, device, mode)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	st := redir.SessionKVM
	if mode == "sol" {
		st = redir.SessionSOL
	}
	s, err := relayclient.Authenticate(c, st, "", "")
	if err != nil {
		return err
	}
	fmt.Println("auth: console sent an empty user and password; amtd injected the admin digest; AMT answered success")
	switch mode {
	case "kvm":
		if err := s.StartKVM(); err != nil {
			return err
		}
		t0 := time.Now()
		h, want := sha256.New(), sha256.New()
		buf, pat := make([]byte, 32<<10), make([]byte, 32<<10)
		for off := 0; off < n; {
			k, err := s.R.Read(buf[:min(len(buf), n-off)])
			if err != nil {
				return fmt.Errorf("KVM stream after %d bytes: %w", off, err)
			}
			h.Write(buf[:k])
			amtsim.KVMPattern(pat[:k], uint64(off))
			want.Write(pat[:k])
			off += k
		}
		el := time.Since(t0)
		fmt.Printf("kvm: read %d bytes of RFB stream in %s (%.1f MB/s), sha256 %x\n", n, el.Round(time.Millisecond),
			float64(n)/el.Seconds()/1e6, h.Sum(nil)[:8])
		if check {
			if string(h.Sum(nil)) != string(want.Sum(nil)) {
				return errors.New("kvm: the stream differs from amtsim's pattern")
			}
			fmt.Println("kvm: the stream matches amtsim's KVM pattern byte for byte")
		}
	case "sol":
		if err := s.StartSOL(); err != nil {
			return err
		}
		if err := s.SendSOL(2, []byte(text)); err != nil {
			return err
		}
		got, err := s.ReadSOL()
		if err != nil {
			return err
		}
		fmt.Printf("sol: sent %q, the device echoed %q\n", text, got)
	default:
		return fmt.Errorf("-mode %q: want kvm or sol", mode)
	}
	// The console closes the session; amtd audits who closed it. The
	// device's status shows it gone once amtd has seen the close.
	_ = c.Close()
	var last string
	for range 50 {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/devices/redirectstatus/"+device, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = strings.TrimSpace(string(b))
		if !strings.Contains(last, "true") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("redirectstatus after close: %s\n", last)
	return nil
}
