package amtsim

import (
	"bytes"
	"encoding/xml"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"amtd/amt/wsman"
	"amtd/secret"
)

// shape is the structure of a response as a reader sees it: header element
// names, then body elements as prefix:local with runs of the same element
// collapsed (list lengths are state, not shape), and the namespace each
// prefix used in the body is bound to.
type shape struct {
	header []string
	body   []string
	ns     map[string]string
}

func shapeOf(t *testing.T, b []byte) shape {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	s := shape{ns: map[string]string{}}
	decl := map[string]string{}
	var path []string
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("xml: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			for _, a := range e.Attr {
				if a.Name.Space == "xmlns" {
					decl[a.Name.Local] = a.Value
				}
			}
			name := e.Name.Space + ":" + e.Name.Local
			switch {
			case len(path) >= 2 && path[1] == "Header" && len(path) == 2:
				s.header = append(s.header, e.Name.Local)
			case len(path) >= 2 && path[1] == "Body":
				if n := len(s.body); n == 0 || s.body[n-1] != name {
					s.body = append(s.body, name)
				}
				s.ns[e.Name.Space] = decl[e.Name.Space]
			}
			path = append(path, e.Name.Local)
		case xml.EndElement:
			path = path[:len(path)-1]
		}
	}
	return s
}

// configuredDevice has an instance of every stateful class, as a
// configured device in the field would.
func configuredDevice(t *testing.T) *Device {
	t.Helper()
	d := newTestDevice(t, Config{Version: defaultBuilds[12]})
	d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1"))
	keyID, _ := d.GenerateKeyPair(0, 2048)
	_ = keyID
	root := makeChain(t, chainOpts{})
	if _, code := d.AddTrustedRootCertificate(b64(root.root.Raw)); code != 0 {
		t.Fatal(code)
	}
	ins := keyPairs(d)
	certDER := signServerCert(t, ins[0].Value("DERKey"))
	certID, code := d.AddCertificate(b64(certDER))
	if code != 0 || !d.setTLSCredential(certID) {
		t.Fatalf("AddCertificate %d", code)
	}
	name, code := d.AddMpServer(MPServer{AccessInfo: "192.168.10.196", InfoFormat: 3, Port: 4433, AuthMethod: 2, Username: "admin12", Password: "P@ssw0rd", CN: "192.168.10.196"})
	if code != 0 {
		t.Fatal(code)
	}
	if _, code := d.AddRemoteAccessPolicyRule(2, 0, "AAAAAAAAABk=", name); code != 0 {
		t.Fatal(code)
	}
	d.mu.Lock()
	d.s.Detection = []string{"a.example", "b.example"}
	d.s.Logs.Alarms = []Alarm{{InstanceID: "testalarm", ElementName: "testalarm", StartTime: "2030-01-01T00:00:00Z", Interval: "P1D", DeleteOnCompletion: true}}
	d.mu.Unlock()
	return d
}

// syntheticFixtures are fixtures written by hand rather than captured,
// whose shape firmware does not have.
var syntheticFixtures = map[string]string{
	"IPS_AlarmClockOccurrence": "the fixture has StartTime \"testdatetime\" and Interval \"0\" as text; firmware nests a CIM " +
		"<Datetime> and <Interval> in them (MPS reads Interval.Interval); TestAlarmClock checks what amtsim serves",
}

// TestGetResponsesMatchFixtureShape sends a Get for the class of every
// fixture get.xml and compares the answer's shape with the fixture's: same
// header elements, same body elements in the same order with the same
// prefixes bound to the same namespaces (spec/wsman.md §5).
func TestGetResponsesMatchFixtureShape(t *testing.T) {
	d := configuredDevice(t)
	var b wsman.Builder
	n := 0
	err := fs.WalkDir(fixtureFS, "fixtures", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, "/get.xml") {
			return err
		}
		fx, _ := fixtureFS.ReadFile(p)
		m, err := wsman.ParseResponse(fx)
		if err != nil || len(m.Instances) == 0 {
			return nil
		}
		class := m.Instances[0].Class
		t.Run(strings.TrimSuffix(strings.TrimPrefix(p, "fixtures/"), "/get.xml"), func(t *testing.T) {
			if why, ok := syntheticFixtures[class]; ok {
				t.Skip(why)
			}
			req, err := b.Get(class)
			if err != nil {
				t.Fatal(err)
			}
			status, body := d.Dispatch(req.Body, Session{})
			if status != http.StatusOK {
				t.Fatalf("Get %s: HTTP %d: %s", class, status, body)
			}
			want, got := shapeOf(t, fx), shapeOf(t, body)
			if strings.Join(want.header, " ") != strings.Join(got.header, " ") {
				t.Errorf("header\n got %v\nwant %v", got.header, want.header)
			}
			if strings.Join(want.body, " ") != strings.Join(got.body, " ") {
				t.Errorf("body\n got %v\nwant %v", got.body, want.body)
			}
			for p, uri := range want.ns {
				if got.ns[p] != uri {
					t.Errorf("prefix %s: got %q, want %q", p, got.ns[p], uri)
				}
			}
		})
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 60 {
		t.Fatalf("only %d get fixtures compared", n)
	}
	_ = secret.Value{}
}
