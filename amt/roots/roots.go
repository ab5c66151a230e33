// Package roots holds the SHA-256 hashes of the root certificates Intel AMT
// trusts by default for remote configuration (spec/activation.md §14).
//
// The list "is subject to change, both by Intel and by OEMs": it is kept here
// as data for reports and warnings, and activation always matches against
// the hashes the device itself reports (hello or rpc-go certHashes).
package roots

import (
	"encoding/hex"
	"strings"
)

// Root is one default trusted root.
type Root struct {
	// Index is the position in the hello of MeshCentral's sample 1, which
	// lists the defaults in firmware order.
	Index int
	// SHA256 is the lower-case hex SHA-256 of the whole DER certificate.
	SHA256 string
	// CA names the certificate authority; "unverified" where the spec could
	// not confirm it.
	CA string
}

// Default returns the 23 default SHA-256 roots in the order AMT reports them
// (spec/activation.md §14). The slice is a fresh copy.
func Default() []Root {
	out := make([]Root, len(defaults))
	for i, d := range defaults {
		out[i] = Root{Index: i, SHA256: d[0], CA: d[1]}
	}
	return out
}

// Lookup finds a default root by its SHA-256, given as raw bytes.
func Lookup(sha256 []byte) (Root, bool) {
	return LookupHex(hex.EncodeToString(sha256))
}

// LookupHex finds a default root by its SHA-256 in hex, either case.
func LookupHex(h string) (Root, bool) {
	h = strings.ToLower(h)
	for i, d := range defaults {
		if d[0] == h {
			return Root{Index: i, SHA256: d[0], CA: d[1]}, true
		}
	}
	return Root{}, false
}

var defaults = [...][2]string{
	{"c3846bf24b9e93ca64274c0ec67c1ecc5e024ffcacd2d74019350e81fe546ae4", "Go Daddy Class 2 CA"},
	{"45140b3247eb9cc8c5b4f0d7b53091f73292089e6e5a63e2749dd3aca9198eda", "Go Daddy Root CA – G2"},
	{"d7a7a0fb5d7e2731d771e9484ebcdef71d5f0c3e0a2948782bc83ee0ea699ef4", "Comodo AAA Certificate Services"},
	{"1465fa205397b876faa6f0a9958e5590e40fcc7faa4fb7c2c8677521fb5fb658", "Starfield Class 2 CA"},
	{"2ce1cb0bf9d2f9e102993fbe215152c3b2dd0cabde1c68e5319b839154dbb7f5", "Starfield Root CA – G2"},
	{"9acfab7e43c8d880d06b262a94deeee4b4659989c3d0caf19baf6405e41ab7df", "VeriSign Class 3 Public Primary CA – G5"},
	{"16af57a9f676b0ab126095aa5ebadef22ab31119d644ac95cd4b93dbf3f26aeb", "Baltimore CyberTrust Root (expired 2025-05-12)"},
	{"960adf0063e96356750c2965dd0a0867da0b9cbd6e77714aeafb2349ab393da3", "Cybertrust Global Root (expired 2021)"},
	{"68ad50909b04363c605ef13581a939ff2c96372e3f12325b0a6861e1d59f6603", "unverified (probably GTE CyberTrust Global Root)"},
	{"6dc47172e01cbcb0bf62580d895fe2b8ac9ad4f873801e0c10b9c837d21eb177", "Entrust.net CA (2048)"},
	{"73c176434f1bc6d5adf45b0e76e727287c8de57616c1e6e6141a2b2cbc7d8e4c", "Entrust Root CA"},
	{"43df5774b03e7fef5fe40d931a7bedf1bb2e6b42738c4e6d3841103d3aa7f339", "Entrust Root CA – G2"},
	{"2399561127a57125de8cefea610ddf2fa078b5c8067f4e828290bfb860e84b3c", "VeriSign Universal Root CA"},
	{"70a73f7f376b60074248904534b11482d5bf0e698ecc498df52577ebf2e93b9a", "AffirmTrust Premium"},
	{"4348a0e9444c78cb265e058d5e8944b4d84f9662bd26db257f8934a443c70161", "DigiCert Global Root CA"},
	{"cb3ccbb76031e5e0138f8dd39a23f9de47ffc35e43c1144cea27d46a5ab1cb5f", "DigiCert Global Root G2"},
	{"31ad6648f8104138c738f39ea4320133393e3a18cc02296ef97c2ac9ef6731d0", "DigiCert Global Root G3"},
	{"552f7bdcf1a7af9e6ce672017f4f12abf77240c78e761ac203d1d9d20ac89988", "DigiCert Trusted Root G4"},
	{"67540a47aa5b9f34570a99723cfefa96a96ee3f0d9b8bf4def9440b8065d665d", "unverified"},
	{"7224395222cd588c4f2683716922addb41e39b581ac34fa87b39efa896fbb39e", "unverified"},
	{"cbb522d7b7f127ad6a0113865bdf1cd4102e7d0759af635a7cf4720dc963c53b", "GlobalSign Root CA – R3"},
	{"179fbc148a3dd00fd24ea13458cc43bfa7f59c8182d783a513f6ebec100c8924", "GlobalSign ECC Root CA – R5"},
	{"2cabeafe37d06ca22aba7391c0033d25982952c453647349763a3ab5ad6ccf69", "GlobalSign Root CA – R6"},
}
