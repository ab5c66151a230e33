package daemon

import (
	"context"
	"errors"
	"sync"

	"amtd/daemon/config"
	"amtd/netsvc"
)

// fakeService records its lifecycle into a shared log of events.
type fakeService struct {
	name     string
	gen      int // which build this is (1 = first, 2 = rebuilt by a reload)
	events   *eventLog
	startErr error
	healthy  error
	status   string
	started  bool
	onStart  func()
}

func (f *fakeService) Name() string { return f.name }
func (f *fakeService) Start(ctx context.Context) error {
	if f.startErr != nil {
		return f.startErr
	}
	f.started = true
	if f.onStart != nil {
		f.onStart()
	}
	f.events.add("start", f.name, f.gen)
	return nil
}
func (f *fakeService) Close(ctx context.Context) error {
	f.events.add("close", f.name, f.gen)
	return nil
}
func (f *fakeService) Health(ctx context.Context) error { return f.healthy }
func (f *fakeService) Status() string                   { return f.status }

// reloadingService implements netsvc.Reloader.
type reloadingService struct {
	fakeService
	mu      sync.Mutex
	domains []string
}

func (r *reloadingService) Reload(ctx context.Context, cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.domains = cfg.Site.Domains
	r.events.add("reload", r.name, r.gen)
	return nil
}

type event struct {
	what, name string
	gen        int
}

type eventLog struct {
	mu sync.Mutex
	ev []event
}

func (l *eventLog) add(what, name string, gen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev = append(l.ev, event{what, name, gen})
}

func (l *eventLog) list() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event(nil), l.ev...)
}

func (l *eventLog) index(e event) int {
	for i, x := range l.list() {
		if x == e {
			return i
		}
	}
	return -1
}

// fakeStore answers Health and DeviceCount; slow makes Health wait for its
// deadline, as a store stuck on a lock would.
type fakeStore struct {
	mu      sync.Mutex
	slow    bool
	devices int
}

func (s *fakeStore) setSlow(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow = v
}

func (s *fakeStore) Health(ctx context.Context) error {
	s.mu.Lock()
	slow := s.slow
	s.mu.Unlock()
	if slow {
		<-ctx.Done()
		return errors.New("store: database is locked")
	}
	return nil
}

func (s *fakeStore) DeviceCount(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices, nil
}

var _ netsvc.Service = (*fakeService)(nil)
var _ netsvc.Reloader = (*reloadingService)(nil)
