package amtsim

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// AddMpServer is AMT_RemoteAccessService.AddMpServer (spec/wsman.md §6).
func (d *Device) AddMpServer(m MPServer) (string, int) {
	switch {
	case m.AccessInfo == "" || len(m.AccessInfo) > 256:
		return "", ptInvalidParam
	case m.InfoFormat != 3 && m.InfoFormat != 4 && m.InfoFormat != 201:
		return "", ptInvalidParam
	case m.Port < 1 || m.Port > 65535:
		return "", ptInvalidParam
	case m.AuthMethod != 1 && m.AuthMethod != 2:
		return "", ptInvalidParam
	case m.AuthMethod == 2 && (m.Username == "" || len(m.Username) > 16 || len(m.Password) > 16):
		return "", ptInvalidParam // AddMpServer limit (spec/activation.md §11)
	case m.InfoFormat != 201 && m.CN == "":
		return "", ptInvalidParam // an IP needs the CN to check the certificate against
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.s.MPServers {
		if strings.EqualFold(o.AccessInfo, m.AccessInfo) && o.Port == m.Port {
			return "", ptDuplicate
		}
	}
	if len(d.s.MPServers) >= maxMPServers {
		return "", ptMaxLimit
	}
	m.Name = fmt.Sprintf("Intel(r) AMT:Management Presence Server %d", d.s.NextMPS)
	d.s.NextMPS++
	d.s.MPServers = append(d.s.MPServers, m)
	d.commitLocked()
	return m.Name, ptSuccess
}

// policyNames are the PolicyRuleName values by trigger; "Periodic" is in the
// fixture, the others follow the IRG's naming (unverified).
var policyNames = map[int]string{0: "User Initiated", 1: "Alert", 2: "Periodic", 3: "Home Provisioning"}

// AddRemoteAccessPolicyRule adds a rule for an existing MPS
// (spec/wsman.md §6, spec/activation.md §9 step 4.6).
func (d *Device) AddRemoteAccessPolicyRule(trigger, lifetime int, extended, mps string) (string, int) {
	name, ok := policyNames[trigger]
	if !ok || lifetime < 0 {
		return "", ptInvalidParam
	}
	if extended != "" {
		if _, err := base64.StdEncoding.DecodeString(extended); err != nil {
			return "", ptInvalidParam
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.ContainsFunc(d.s.MPServers, func(m MPServer) bool { return m.Name == mps }) {
		return "", ptInvalidParam
	}
	if slices.ContainsFunc(d.s.PolicyRules, func(r PolicyRule) bool { return r.Name == name }) {
		return "", ptDuplicate
	}
	d.s.PolicyRules = append(d.s.PolicyRules, PolicyRule{Name: name, Trigger: trigger, TunnelLifeTime: lifetime, ExtendedData: extended, MpServer: mps})
	d.commitLocked()
	go d.ciraReconcile()
	return name, ptSuccess
}

func (d *Device) deletePolicyRule(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.s.PolicyRules, func(r PolicyRule) bool { return r.Name == name })
	if i < 0 {
		return false
	}
	d.s.PolicyRules = slices.Delete(d.s.PolicyRules, i, i+1)
	d.commitLocked()
	go d.ciraReconcile()
	return true
}

// deleteMPServer removes an MPS and the rules that point at it.
func (d *Device) deleteMPServer(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.s.MPServers, func(m MPServer) bool { return m.Name == name })
	if i < 0 {
		return false
	}
	d.s.MPServers = slices.Delete(d.s.MPServers, i, i+1)
	d.s.PolicyRules = slices.DeleteFunc(d.s.PolicyRules, func(r PolicyRule) bool { return r.MpServer == name })
	d.commitLocked()
	go d.ciraReconcile()
	return true
}

// insideEnterpriseLocked applies environment detection (spec/network.md §5):
// the device is inside when its DHCP domain equals, or ends with "." plus,
// a detection string. Exact-versus-suffix matching is unverified; the
// simulator uses the wider suffix match, the one amtd must avoid.
func (d *Device) insideEnterpriseLocked() bool {
	dom := normName(d.s.DhcpDNSSuffix)
	if dom == "" {
		return false
	}
	for _, s := range d.s.Detection {
		s = normName(s)
		if s != "" && (dom == s || strings.HasSuffix(dom, "."+s)) {
			return true
		}
	}
	return false
}

// requestStateChange stores the state of the simple CIM services.
func (d *Device) requestStateChange(class string, state int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch class {
	case "AMT_UserInitiatedConnectionService":
		if state < 32768 || state > 32771 {
			return cimInvalidParam
		}
		d.s.UserInitConn = state
	case "AMT_RedirectionService":
		if state < 32768 || state > 32771 {
			return cimInvalidParam
		}
		d.s.RedirectionState = state
	case "CIM_KVMRedirectionSAP":
		switch state {
		case 2:
			d.s.KVMState = 2
		case 3:
			d.s.KVMState = 3
		default:
			return cimInvalidParam
		}
	default:
		return cimInvalidParam
	}
	d.commitLocked()
	return cimCompleted
}
