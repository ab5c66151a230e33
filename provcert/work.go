package provcert

import (
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// MaxIterations bounds the key-derivation rounds a file may ask for. OpenSSL
// writes 2048, Windows 2000 to 10000, Java 10000; the PKCS#12 decoder has no
// bound of its own, so a crafted file could keep it busy for hours. At the
// bound, Load takes about 0.6 s here (AES or 3DES file, 2 shared cores).
const MaxIterations = 1 << 20

// maxDepth bounds how deep checkWork descends into nested DER.
const maxDepth = 16

// checkWork walks the DER of a .pfx, descending into OCTET STRINGs that hold
// DER (PKCS#7 data, bags), and refuses iteration counts over MaxIterations
// in the places PKCS#12 keeps them: PBE parameters and PBKDF2 parameters
// (SEQUENCE { salt OCTET STRING, iterations INTEGER, ... }) and the MAC
// (SEQUENCE { DigestInfo, salt OCTET STRING, iterations INTEGER }). Bags
// inside encrypted content are out of its sight until decryption; they are
// behind the MAC, which is checked first. Malformed DER is left for the
// decoder to report.
func checkWork(der []byte) error {
	return walk(cryptobyte.String(der), 0)
}

func walk(s cryptobyte.String, depth int) error {
	if depth > maxDepth {
		return nil
	}
	for !s.Empty() {
		var el cryptobyte.String
		var tag asn1.Tag
		if !s.ReadAnyASN1(&el, &tag) {
			return nil
		}
		switch {
		case tag == asn1.SEQUENCE:
			if err := checkParams(el); err != nil {
				return err
			}
			if err := walk(el, depth+1); err != nil {
				return err
			}
		case tag&0x20 != 0: // constructed: SET, [0] EXPLICIT...
			if err := walk(el, depth+1); err != nil {
				return err
			}
		case tag == asn1.OCTET_STRING && len(el) > 0 && el[0] == byte(asn1.SEQUENCE):
			if err := walk(el, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkParams looks at a SEQUENCE's first elements for the two shapes that
// carry an iteration count.
func checkParams(seq cryptobyte.String) error {
	var first, second, third cryptobyte.String
	var t1, t2, t3 asn1.Tag
	if !seq.ReadAnyASN1(&first, &t1) || !seq.ReadAnyASN1(&second, &t2) {
		return nil
	}
	iter, itag := second, t2
	if t1 == asn1.SEQUENCE && t2 == asn1.OCTET_STRING {
		if !seq.ReadAnyASN1(&third, &t3) {
			return nil // MacData with the default of one iteration
		}
		iter, itag = third, t3
	} else if t1 != asn1.OCTET_STRING {
		return nil
	}
	if itag != asn1.INTEGER {
		return nil
	}
	// A positive INTEGER over MaxIterations needs more than three content
	// bytes, or three with a value past the bound.
	n := len(iter)
	if n > 0 && iter[0] == 0 {
		iter, n = iter[1:], n-1
	}
	if n > 4 {
		return problem(CheckDecode, "the file asks for more than %d key-derivation iterations: export it again with the tool's default settings", MaxIterations)
	}
	v := 0
	for _, b := range iter {
		v = v<<8 | int(b)
	}
	if v > MaxIterations {
		return problem(CheckDecode, "the file asks for %d key-derivation iterations, over the %d amtd allows: export it again with the tool's default settings", v, MaxIterations)
	}
	return nil
}
