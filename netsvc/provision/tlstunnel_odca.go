package provision

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"
)

// intelODCARootPEM is Intel's On-Die CA root, which issues the chain AMT
// presents on its TLS ports before provisioning (spec/network.md §7):
// O=Intel Corporation, OU=OnDie CA Root Cert Signing, CN=www.intel.com,
// ECDSA P-384, valid 2019-04-03 to 2049-12-31, SHA-256
// BEB40BB7507B33967226AA80E084749FBB6593893C642E818D682E9A8D07FC24. rpc-go
// ships it as internal/certs/trustedstore/OnDie_CA_RootCA_Certificate.cer,
// RPS in src/certs/amt-odca.ts. TestIntelODCARoot checks the hash.
const intelODCARootPEM = `-----BEGIN CERTIFICATE-----
MIICujCCAj6gAwIBAgIUPLLiHTrwySRtWxR4lxKLlu7MJ7wwDAYIKoZIzj0EAwMF
ADCBiTELMAkGA1UEBgwCVVMxCzAJBgNVBAgMAkNBMRQwEgYDVQQHDAtTYW50YSBD
bGFyYTEaMBgGA1UECgwRSW50ZWwgQ29ycG9yYXRpb24xIzAhBgNVBAsMGk9uRGll
IENBIFJvb3QgQ2VydCBTaWduaW5nMRYwFAYDVQQDDA13d3cuaW50ZWwuY29tMB4X
DTE5MDQwMzAwMDAwMFoXDTQ5MTIzMTIzNTk1OVowgYkxCzAJBgNVBAYMAlVTMQsw
CQYDVQQIDAJDQTEUMBIGA1UEBwwLU2FudGEgQ2xhcmExGjAYBgNVBAoMEUludGVs
IENvcnBvcmF0aW9uMSMwIQYDVQQLDBpPbkRpZSBDQSBSb290IENlcnQgU2lnbmlu
ZzEWMBQGA1UEAwwNd3d3LmludGVsLmNvbTB2MBAGByqGSM49AgEGBSuBBAAiA2IA
BK8SfB2UflvXZqb5Kc3+lokrABHWazvNER2axPURP64HILkXChPB0OEX5hLB7Okw
7Dy6oFqB5tQVDupgfvUX/SgYBEaDdG5rCVFrGAis6HX5TA2ewQmj14r2ncHBgnpp
B6NjMGEwHwYDVR0jBBgwFoAUtFjJ9uQIQKPyWMg5eG6ujgqNnDgwDwYDVR0TAQH/
BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFLRYyfbkCECj8ljIOXhu
ro4KjZw4MAwGCCqGSM49BAMDBQADaAAwZQIxAP9B4lFF86uvpHmkcp61cWaU565a
yE3p7ezu9haLE/lPLh5hFQfmTi1nm/sG3JEXMQIwNpKfHoDmUTrUyezhhfv3GG+1
CqBXstmCYH40buj9jKW3pHWc71s9arEmPWli7I8U
-----END CERTIFICATE-----
`

var intelODCA = sync.OnceValue(func() *x509.Certificate {
	b, _ := pem.Decode([]byte(intelODCARootPEM))
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		panic("provision: the built-in ODCA root does not parse: " + err.Error())
	}
	return c
})

// intelODCARoots is the default trust for the agent TLS tunnel.
func intelODCARoots() []*x509.Certificate { return []*x509.Certificate{intelODCA()} }

// LoadODCARoots reads extra On-Die CA roots for AgentServer.ODCARoots from
// a PEM file (amtsim writes its simulated root to FILE.crt with -odca
// FILE). Only CERTIFICATE blocks are read; a file with none is an error.
func LoadODCARoots(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent ODCA roots: %w", err)
	}
	var out []*x509.Certificate
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("agent ODCA roots %s: %w", path, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("agent ODCA roots %s: %s is not a CA certificate", path, c.Subject)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("agent ODCA roots %s: no PEM certificate in the file", path)
	}
	return out, nil
}
