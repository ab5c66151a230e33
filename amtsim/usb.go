package amtsim

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"amtd/amt/setupbin"
)

// factoryMEBxPassword is the MEBx password of a machine nobody has set one
// on (spec/network.md §3.3: the recipe's "old" password).
const factoryMEBxPassword = "admin"

// USBResult says what a setup.bin record did to the device.
type USBResult struct {
	Record   uint32 // the record's number in the file
	Settings setupbin.Settings
}

// ApplySetupBin consumes the next record of a setup.bin as firmware does at
// boot with the key inserted (spec/network.md §3): the record's current
// MEBx password must match, the new one must satisfy the password rule;
// then the record's root hash becomes a user root, the PKI DNS suffix, the
// provisioning server address, FQDN and port are set, and "start
// provisioning" opens remote configuration so hellos go out. A refused
// record changes nothing on the device and is not consumed.
//
// f is changed in place (the consumed count and the record's valid flag):
// the caller writes it back to the key.
func (d *Device) ApplySetupBin(f *setupbin.File) (USBResult, error) {
	i := f.Next()
	if i < 0 {
		return USBResult{}, fmt.Errorf("amtsim: %s: every record is consumed", f)
	}
	rec := f.Records[i]
	if !rec.Valid() {
		return USBResult{}, fmt.Errorf("amtsim: setup.bin record %d is not valid", rec.Number)
	}
	s, _, err := setupbin.SettingsOf(rec)
	if err != nil {
		return USBResult{}, fmt.Errorf("amtsim: setup.bin record %d: %w", rec.Number, err)
	}
	var hash *RootHash
	if h := s.RootHash; h != nil {
		alg := map[uint8]string{1: "sha1", 2: "sha256", 3: "sha384"}[h.Algorithm]
		hash = &RootHash{Algorithm: alg, Hex: hex.EncodeToString(h.Hash), Name: h.Name}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode != ModePreProvisioning {
		return USBResult{}, fmt.Errorf("amtsim: device %s is provisioned (control mode %d); USB setup applies in pre-provisioning only", d.UUID, d.s.ControlMode)
	}
	if s.NewMEBxPassword != "" {
		cur := d.s.MEBxPassword
		if cur == "" {
			cur = factoryMEBxPassword
		}
		if subtle.ConstantTimeCompare([]byte(cur), []byte(s.CurrentMEBxPassword)) != 1 {
			return USBResult{}, fmt.Errorf("amtsim: setup.bin record %d: the current MEBx password does not match the device's", rec.Number)
		}
		if err := CheckPassword(s.NewMEBxPassword); err != nil {
			return USBResult{}, fmt.Errorf("amtsim: setup.bin record %d: new MEBx password: %w", rec.Number, err)
		}
	}
	if _, ok := f.Consume(); !ok {
		return USBResult{}, errors.New("amtsim: setup.bin record vanished")
	}
	if s.NewMEBxPassword != "" {
		d.s.MEBxPassword = s.NewMEBxPassword
	}
	if hash != nil {
		d.s.UserHashes = append(d.s.UserHashes, *hash)
	}
	if s.PKIDNSSuffix != "" {
		d.s.TrustedDNSSuffix = s.PKIDNSSuffix
	}
	if s.HostName != "" {
		d.s.HostName = s.HostName
	}
	if s.ConfigServerFQDN != "" {
		d.s.ProvServerFQDN = s.ConfigServerFQDN
	}
	if s.ServerAddr.IsValid() {
		d.s.ProvServerIP = s.ServerAddr.String()
	}
	if s.ServerPort != 0 {
		d.s.ProvServerPort = int(s.ServerPort)
	}
	if s.Start {
		d.s.RemoteConfigEnabled = true
	}
	d.commitLocked()
	d.log.Info("USB setup applied", "record", rec.Number, "suffix", s.PKIDNSSuffix, "server", d.s.ProvServerIP, "port", d.s.ProvServerPort)
	return USBResult{Record: rec.Number, Settings: s}, nil
}

// ApplySetupBinFile reads a setup.bin from path, applies its next record
// and writes the file back with the record consumed, as a USB key is left
// after a boot.
func (d *Device) ApplySetupBinFile(path string) (USBResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return USBResult{}, fmt.Errorf("amtsim: %w", err)
	}
	f, err := setupbin.Decode(b)
	if err != nil {
		return USBResult{}, fmt.Errorf("amtsim: %s: %w", path, err)
	}
	res, err := d.ApplySetupBin(f)
	if err != nil {
		return res, err
	}
	out, err := setupbin.Encode(f)
	if err != nil {
		return res, fmt.Errorf("amtsim: write back %s: %w", path, err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return res, fmt.Errorf("amtsim: write back %s: %w", path, err)
	}
	return res, nil
}
