package wsman

import (
	"testing"
)

func FuzzParseResponse(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(fx.body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseResponse(body)
		if m == nil {
			if err == nil {
				t.Fatal("nil message without error")
			}
			return
		}
		// Whatever parses can be written back and parses the same way.
		r := Reply{Action: m.Header.Action, RelatesTo: m.Header.RelatesTo, ResourceURI: m.Header.ResourceURI}
		var out []byte
		switch m.Kind {
		case KindInstance:
			out = WriteGetResponse(r, m.Instances[0])
		case KindPull:
			out = WritePullResponse(r, m.Instances, m.EnumerationContext, m.EndOfSequence)
		case KindMethod:
			out = WriteMethodResponse(r, *m.Method)
		default:
			return
		}
		if _, err := ParseResponse(out); err != nil {
			t.Fatalf("written response does not parse: %v\n%s", err, out)
		}
		for i := range m.Instances {
			_, _ = DecodeInstance(&m.Instances[i])
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	var b Builder
	seeds := []func() (*Request, error){
		func() (*Request, error) { return b.Get("AMT_GeneralSettings") },
		func() (*Request, error) { return b.Enumerate("CIM_SoftwareIdentity") },
		func() (*Request, error) {
			return b.Pull("CIM_SoftwareIdentity", "E2020000-0000-0000-0000-000000000000")
		},
		func() (*Request, error) {
			return b.Invoke("IPS_HostBasedSetupService", "AddNextCertInChain", AddNextCertInChainInput{NextCertificate: "MIIB", IsLeafCertificate: true}.Params())
		},
		func() (*Request, error) {
			return b.Put("AMT_RemoteAccessPolicyAppliesToMPS", Instance{Props: []Property{{Name: "MpsType", Value: "2"}}},
				Selector{Name: "PolicySet", EPR: &EPR{ResourceURI: BaseAMT + "AMT_RemoteAccessPolicyRule", Selectors: []Selector{{Name: "PolicyRuleName", Value: "Periodic"}}}})
		},
	}
	for _, s := range seeds {
		r, err := s()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(r.Body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseRequest(body)
		if err != nil {
			return
		}
		if m.Header.Action == "" {
			t.Fatal("request without action accepted")
		}
	})
}

// BenchmarkParseFixtures reports WS-Man responses parsed per second over
// the whole fixture set.
func BenchmarkParseFixtures(b *testing.B) {
	fixtures := loadFixtures(b)
	var bytes int64
	for _, fx := range fixtures {
		bytes += int64(len(fx.body))
	}
	b.SetBytes(bytes / int64(len(fixtures)))
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		fx := fixtures[i%len(fixtures)]
		if _, err := ParseResponse(fx.body); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "responses/s")
}
