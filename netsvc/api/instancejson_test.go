package api

import (
	"encoding/json"
	"testing"

	"amtd/amt/wsman"
)

// TestInstanceJSON: properties are typed as MPS's XML parser types them,
// so Open AMT clients comparing numbers and booleans keep working.
func TestInstanceJSON(t *testing.T) {
	in := wsman.Instance{Props: []wsman.Property{
		{Name: "ProvisioningState", Value: "2"},
		{Name: "ZeroTouchConfigurationEnabled", Value: "false"},
		{Name: "VersionString", Value: "16.1.25"},
		{Name: "ElementName", Value: "0123"},
		{Name: "InstanceID", Value: "7"},
		{Name: "HostName", Value: "pc-17"},
		{Name: "DNS", Value: "10.0.0.1"},
		{Name: "DNS", Value: "10.0.0.2"},
		{Name: "Code", Value: "1"},
		{Name: "Code", Value: "x"},
		{Name: "Code", Value: "true"},
		{Name: "Huge", Value: "99999999999999999999"},
		{Name: "Ref", EPR: &wsman.EPR{}},
	}}
	b, err := json.Marshal(instanceJSON(&in))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"Code":[1,"x",true],"DNS":["10.0.0.1","10.0.0.2"],"ElementName":"0123","HostName":"pc-17","Huge":"99999999999999999999",` +
		`"InstanceID":7,"ProvisioningState":2,"VersionString":"16.1.25","ZeroTouchConfigurationEnabled":false}`
	if string(b) != want {
		t.Errorf("instanceJSON:\n got %s\nwant %s", b, want)
	}
}
