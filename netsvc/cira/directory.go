package cira

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"amtd/store"
)

// Directory is what the relay needs of the store: who may connect, with
// which credentials, and where link state goes. The service uses the store;
// timing tests use a fake.
type Directory interface {
	// Known reports whether uuid (lower-case text form) is a device of the
	// site (spec/apf.md §5: the allowlist).
	Known(ctx context.Context, uuid string) (bool, error)
	// CheckCredentials reports whether user and password are the device's
	// MPS credentials. It must take the same time whether the user or the
	// password is wrong.
	CheckCredentials(ctx context.Context, uuid, user string, password []byte) (userOK, passwordOK bool, err error)
	// PutLinks writes a batch of link states.
	PutLinks(ctx context.Context, links []store.CIRALink) error
	// Release marks every link owned by instance disconnected (at start).
	Release(ctx context.Context, instance string) (int, error)
}

// storeDirectory is the Directory of the real store.
type storeDirectory struct{ st *store.Store }

func (d storeDirectory) Known(ctx context.Context, uuid string) (bool, error) {
	_, err := d.st.Devices().Get(ctx, uuid)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (d storeDirectory) CheckCredentials(ctx context.Context, uuid, user string, password []byte) (bool, bool, error) {
	dev, err := d.st.Devices().Get(ctx, uuid)
	if err != nil {
		return false, false, err
	}
	// The user name is the one provisioning gave AddMpServer. Devices
	// configured before it was recorded have none; the password decides.
	userOK := dev.CIRA.MPSUsername == "" || subtle.ConstantTimeCompare([]byte(dev.CIRA.MPSUsername), []byte(user)) == 1
	// The password is checked even when the user is wrong, so both cost
	// one argon2id hash and a timing difference says nothing.
	pwOK, err := d.st.Secrets().CheckMPS(ctx, uuid, password)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, false, err
	}
	return userOK, pwOK, nil
}

func (d storeDirectory) PutLinks(ctx context.Context, links []store.CIRALink) error {
	return d.st.Devices().PutCIRALinks(ctx, links)
}

func (d storeDirectory) Release(ctx context.Context, instance string) (int, error) {
	return d.st.Devices().ReleaseInstance(ctx, instance)
}

// flushInterval is how often link state is written to the store.
// Connects, disconnects and keep-alives in between are coalesced per device
// (spec/apf.md §10).
const flushInterval = 5 * time.Second
