package metrics

import (
	"strings"
	"testing"
)

func TestTextExposition(t *testing.T) {
	r := NewRegistry()
	r.Counter("amtd_reload_failures_total", "Reloads refused because the new config was invalid.").Add(2)
	cv := r.CounterVec("amtd_cira_auth_failures_total", "CIRA authentication failures.", "reason")
	cv.With("bad_password").Inc()
	cv.With("unknown_uuid").Add(3)
	r.GaugeFunc("amtd_devices_connected", "Devices with a live CIRA link.", func() float64 { return 7 })
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP amtd_cira_auth_failures_total CIRA authentication failures.
# TYPE amtd_cira_auth_failures_total counter
amtd_cira_auth_failures_total{reason="bad_password"} 1
amtd_cira_auth_failures_total{reason="unknown_uuid"} 3
# HELP amtd_devices_connected Devices with a live CIRA link.
# TYPE amtd_devices_connected gauge
amtd_devices_connected 7
# HELP amtd_reload_failures_total Reloads refused because the new config was invalid.
# TYPE amtd_reload_failures_total counter
amtd_reload_failures_total 2
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestSameNameReturnsSameMetric(t *testing.T) {
	r := NewRegistry()
	a := r.Counter("x_total", "x")
	b := r.Counter("x_total", "x")
	a.Inc()
	if b.Value() != 1 {
		t.Fatalf("second registration returned a different counter")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a counter name as a gauge did not panic")
		}
	}()
	r.Gauge("x_total", "x")
}
