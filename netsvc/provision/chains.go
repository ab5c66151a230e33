package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"amtd/store"
)

// OpenPFX decodes a domain's .pfx into the chain to present (leaf first,
// root last, with the leaf's key) and the root.
type OpenPFX func(pfx, password []byte) (tls.Certificate, *x509.Certificate, error)

// StoreChains is the ChainSource of the running daemon: the domains in the
// store, each .pfx opened once and kept until the domain is updated
// (`amtd domain replace-cert`) or removed.
type StoreChains struct {
	Store *store.Store
	Open  OpenPFX

	mu    sync.Mutex
	cache map[string]cachedChain
}

type cachedChain struct {
	updated time.Time
	chain   Chain
}

// Chains implements ChainSource. A domain whose .pfx no longer opens is an
// error naming it: better loud than activating with a different domain.
func (s *StoreChains) Chains(ctx context.Context) ([]Chain, error) {
	ds := s.Store.Domains()
	list, err := ds.List(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[string]cachedChain{}
	}
	keep := map[string]bool{}
	out := make([]Chain, 0, len(list))
	for _, d := range list {
		keep[d.Suffix] = true
		if c, ok := s.cache[d.Suffix]; ok && c.updated.Equal(d.Updated) {
			out = append(out, c.chain)
			continue
		}
		full, err := ds.Get(ctx, d.Suffix)
		if err != nil {
			return nil, err
		}
		cert, root, err := s.Open(full.PFX.Reveal(), full.PFXPassword.Reveal())
		full.PFX.Wipe()
		full.PFXPassword.Wipe()
		if err != nil {
			return nil, fmt.Errorf("domain %s: its provisioning certificate does not open: %w", d.Suffix, err)
		}
		c := Chain{Suffix: d.Suffix, Cert: cert, Root: root}
		s.cache[d.Suffix] = cachedChain{updated: d.Updated, chain: c}
		out = append(out, c)
	}
	for k := range s.cache {
		if !keep[k] {
			delete(s.cache, k)
		}
	}
	return out, nil
}
