package amtsim

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strconv"

	"amtd/amt/wsman"
)

// User consent (IPS_OptInService, spec/wsman.md §6). OptInState: 0 not
// started, 1 requested, 2 displayed, 3 received, 4 in session. The code is
// six digits shown on the host's screen; OptInCode reads it, as the person
// at the machine would.
const (
	optInNotStarted = 0
	optInDisplayed  = 2
	optInReceived   = 3
	// optInBadCode is the ReturnValue for a wrong code: a guess
	// (PT_STATUS 2066), not confirmed from a capture.
	optInBadCode = 2066
)

type optIn struct {
	state int
	code  string
}

// OptInCode returns the code on the host's screen, "" when none is shown.
func (d *Device) OptInCode() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.consent.code
}

func optInService(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("IPS_OptInService")
	d.mu.Lock()
	defer d.mu.Unlock()
	setProp(&in, "OptInRequired", strconv.Itoa(d.s.OptInRequired))
	setProp(&in, "OptInState", strconv.Itoa(d.consent.state))
	return []wsman.Instance{in}
}

func putOptIn(d *Device, body *wsman.Instance, _ []wsman.Selector) *wsman.Fault {
	v, ok := body.Get("OptInRequired")
	if !ok {
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || (n != 0 && n != 1 && n != 4294967295) {
		return faultInvalidRepresentation("IPS_OptInService", "OptInRequired must be 0, 1 or 4294967295.")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode != ModeACM {
		// Only ACM may change the consent policy (CCM always requires it).
		return faultActionNotSupported("IPS_OptInService", "Put")
	}
	d.s.OptInRequired = int(n)
	d.commitLocked()
	return nil
}

func optInMethods() map[string]method {
	const class = "IPS_OptInService"
	return map[string]method{
		"StartOptIn": func(d *Device, _ *wsman.Instance, _ Session) []wsman.Property {
			n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
			d.mu.Lock()
			d.consent = optIn{state: optInDisplayed, code: fmt.Sprintf("%06d", n.Int64())}
			d.mu.Unlock()
			return []wsman.Property{rv(class, 0)}
		},
		"SendOptInCode": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.consent.state != optInDisplayed {
				return []wsman.Property{rv(class, 2)}
			}
			if in.Value("OptInCode") != d.consent.code {
				return []wsman.Property{rv(class, optInBadCode)}
			}
			d.consent = optIn{state: optInReceived}
			return []wsman.Property{rv(class, 0)}
		},
		"CancelOptIn": func(d *Device, _ *wsman.Instance, _ Session) []wsman.Property {
			d.mu.Lock()
			d.consent = optIn{state: optInNotStarted}
			d.mu.Unlock()
			return []wsman.Property{rv(class, 0)}
		},
	}
}
