// Package amtsim is a software Intel AMT device: firmware rules for
// activation and configuration, a WS-Man server with digest auth answering in
// the shape of real firmware, the mutual-TLS setup session, hello packets,
// and a CIRA client with WS-Man and redirection channels. One process runs
// one or thousands of devices so amtd can be tested end to end and at fleet
// scale. docs/amtsim.md lists each behaviour with the spec section it
// follows and marks the guesses.
package amtsim

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"amtd/amt/digest"
	"amtd/amt/guid"
)

// Config describes one device at first boot. Settings already persisted in
// the state directory win over it, except what the host decides each boot
// (network identity, MPS reachability, faults).
type Config struct {
	UUID    guid.UUID // zero: random
	Version Version
	// StateDir holds <uuid>.json; empty keeps settings in memory only.
	StateDir string
	// Realm is the digest realm; empty: random Digest:+32 upper hex.
	Realm string
	// ExtraRootHashes are user-added trusted roots (MEBx/USB setup.bin) at
	// first boot.
	ExtraRootHashes []RootHash
	// RemoteConfig opens the remote configuration interface (hellos and the
	// mutual-TLS setup session) while in pre-provisioning.
	RemoteConfig bool
	// TrustedDNSSuffix is the MEBx "PKI DNS Suffix"; it wins over option 15
	// for certificate matching (spec/activation.md §13).
	TrustedDNSSuffix string
	Net              NetIdentity
	// Keys hands out RSA keys for GenerateKeyPair and the self-signed
	// listener certificate; nil uses a small shared pool.
	Keys *KeyPool
	// CIRA, when set, attaches the CIRA client (EnableCIRA).
	CIRA   *CIRAOptions
	Faults *Faults
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
}

// Device is one simulated AMT. All state changes go through its firmware
// methods under mu; listeners and CIRA read it through the same lock.
type Device struct {
	UUID    guid.UUID
	Version Version

	log    *slog.Logger
	now    func() time.Time
	keys   *KeyPool
	faults *Faults
	path   string // settings file, "" in memory only

	mu    sync.Mutex
	s     *Settings
	net   NetIdentity
	chain []*x509.Certificate // AddNextCertInChain in progress (not persisted)
	enums enumTable
	dsrv  *digest.Server // created on first use; a reboot makes a new one
	msgID uint64
	self  *tls.Certificate // self-signed listener certificate, made on first handshake

	// generation counts reboots: connections from an older generation are
	// closed by a reboot.
	generation uint64
	conns      map[*trackedConn]struct{}
	cira       *ciraState
	consent    optIn
	onCommit   []func()
	kvmIn      kvmInput // what the last KVM session received (redirection.go)
	iderIn     kvmInput // what the last IDE-R session received (redirection.go)
}

// New boots a device: it loads the settings file when one exists, else
// makes factory settings from cfg and writes them.
func New(cfg Config) (*Device, error) {
	if _, err := loadTemplates(); err != nil {
		return nil, err
	}
	if cfg.Version.Major == 0 {
		cfg.Version = defaultBuilds[16]
	}
	if cfg.UUID.IsZero() {
		if _, err := rand.Read(cfg.UUID[:]); err != nil {
			return nil, err
		}
	}
	d := &Device{
		UUID: cfg.UUID, Version: cfg.Version, keys: cfg.Keys, faults: cfg.Faults,
		log: cfg.Logger, now: cfg.Now, net: cfg.Net,
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("dev", d.UUID.String())
	if d.now == nil {
		d.now = time.Now
	}
	if d.keys == nil {
		d.keys = sharedPool()
	}
	if cfg.StateDir != "" {
		d.path = filepath.Join(cfg.StateDir, d.UUID.String()+".json")
		s, err := loadSettings(d.path)
		switch {
		case err == nil:
			if s.UUID != d.UUID.String() {
				return nil, fmt.Errorf("amtsim: settings file %s belongs to %s", d.path, s.UUID)
			}
			d.s = s
			if v, err := ParseVersion(s.Version); err == nil {
				d.Version = v
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	if d.s == nil {
		realm := cfg.Realm
		if realm == "" {
			realm = randomRealm()
		}
		if err := digest.ValidateRealm(realm); err != nil {
			return nil, fmt.Errorf("amtsim: device %s realm %q: %w", d.UUID, realm, err)
		}
		d.s = factorySettings(d.UUID, d.Version, realm)
		d.s.UserHashes = append(d.s.UserHashes, cfg.ExtraRootHashes...)
		d.s.RemoteConfigEnabled = cfg.RemoteConfig
		d.s.TrustedDNSSuffix = cfg.TrustedDNSSuffix
		if err := d.persistLocked(); err != nil {
			return nil, err
		}
	}
	d.s.DhcpDNSSuffix = d.net.Suffix
	if cfg.CIRA != nil {
		d.EnableCIRA(*cfg.CIRA)
	}
	return d, nil
}

func factorySettings(u guid.UUID, v Version, realm string) *Settings {
	return &Settings{
		UUID: u.String(), Version: v.String(), Realm: realm,
		ConfigurationNonce: newNonce(),
		LSAPassword:        hex.EncodeToString(newNonce()[:12]),
		HostName:           "amtsim-" + u.String()[:8],
		TLSRemote:          TLSSetting{},
		TLSLocal:           TLSSetting{AcceptNonSecure: true},
		UserInitConn:       32768,
		RedirectionState:   32768,
		KVMState:           3,
		OptInRequired:      4294967295,
		PowerState:         2,
	}
}

func randomRealm() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "Digest:" + strings.ToUpper(hex.EncodeToString(b[:]))
}

func newNonce() []byte {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return b
}

// persistLocked writes the settings file; the caller holds mu.
func (d *Device) persistLocked() error {
	if d.path == "" {
		return nil
	}
	return saveSettings(d.path, d.s)
}

// commit persists after a firmware change and logs a failure: the call
// still answers, as flash-write trouble on real firmware surfaces later.
func (d *Device) commitLocked() {
	if err := d.persistLocked(); err != nil {
		d.log.Error("persist settings", "err", err)
	}
}

// Snapshot returns a copy of the settings for inspection (tests, status).
func (d *Device) Snapshot() Settings {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := *d.s
	return s
}

// Realm is the device's digest realm.
func (d *Device) Realm() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.s.Realm
}

// ControlMode is IPS_HostBasedSetupService.CurrentControlMode.
func (d *Device) ControlMode() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.s.ControlMode
}

// dnsSuffixLocked is the suffix certificates are matched against: the MEBx
// PKI DNS suffix when set, else DHCP option 15 (spec/activation.md §13,
// spec/network.md §1.2; the precedence is inferred, not stated by Intel).
func (d *Device) dnsSuffixLocked() string {
	if d.s.TrustedDNSSuffix != "" {
		return d.s.TrustedDNSSuffix
	}
	return d.s.DhcpDNSSuffix
}

// SetNetIdentity changes the network identity (a new DHCP lease).
func (d *Device) SetNetIdentity(n NetIdentity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.net = n
	d.s.DhcpDNSSuffix = n.Suffix
}

// digestServerLocked returns the device's digest server, made on first use
// so an idle device holds no nonce table.
func (d *Device) digestServerLocked() *digest.Server {
	if d.dsrv == nil {
		d.dsrv = digest.NewServer(d.s.Realm)
		d.dsrv.MaxNonces = 64
	}
	return d.dsrv
}

// AddRootHash adds a user root hash, as MEBx or a USB setup.bin would.
func (d *Device) AddRootHash(h RootHash) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.s.UserHashes = append(d.s.UserHashes, h)
	d.commitLocked()
}
