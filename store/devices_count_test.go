package store

import (
	"context"
	"testing"
)

func TestCountWhere(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	devs := s.Devices()
	for i, d := range []Device{
		{UUID: dev1, Tags: []string{"lab"}, CIRA: CIRAState{Connected: true}},
		{UUID: dev2, Tags: []string{"lab", "floor2"}},
		{UUID: "00000000-0000-0000-0000-0000000000ff"},
	} {
		if err := devs.Put(ctx, d); err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
	}
	yes, no := true, false
	for _, c := range []struct {
		q    DeviceQuery
		want int
	}{
		{DeviceQuery{}, 3},
		{DeviceQuery{Connected: &yes}, 1},
		{DeviceQuery{Connected: &no}, 2},
		{DeviceQuery{Tag: "lab"}, 2},
		{DeviceQuery{Tag: "lab", Connected: &no}, 1},
		{DeviceQuery{Tag: "none"}, 0},
	} {
		n, err := devs.CountWhere(ctx, c.q)
		if err != nil || n != c.want {
			t.Errorf("%+v: %d %v, want %d", c.q, n, err, c.want)
		}
		list, _ := devs.List(ctx, DeviceQuery{Tag: c.q.Tag, Connected: c.q.Connected})
		if len(list) != n {
			t.Errorf("%+v: List gives %d, CountWhere %d", c.q, len(list), n)
		}
	}
}
