package tlsbridge

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/keytool/keytool/internal/keydir"
)

// LockIdentity takes the lock of the writers of the identity files in
// directory dir — a keytool home's key.*, pub_key.*, key.next.* and
// pub_key.next.*, or a key file a command names and its pub_ file beside
// it — and returns the function that releases it. Each writer holds it
// from its read of what it compares against (the identity present, the
// key it rewrites) to its last write, so that after any set of
// concurrent writers the private key and every public file made from it
// are one writer's: keytool gen in every form and rotate
// (RotateHome), and LoadOrGenerateHomeIdentity's first key. Without it,
// two gen --force at once left key.json from one and pub_key.json from
// the other, one pair in four (found by review, 2026-12-03;
// docs/design.md, "Concurrent writers").
//
// It is the lock the writers of a trust directory take
// (keydir.LockWriters: .keytool.lock in dir, 0600, flocked, waited for at
// most 10 s), HOME/.keytool.lock being also that of the edits of
// HOME/authorized_keys.json and HOME/trusted_hosts.json. Where it cannot
// be had — a lock file that is not a regular file of this user's, a file
// system without flock(2), a lock held past the wait — unlock does
// nothing, the writer goes ahead unlocked, and unlocked says why (a
// *keydir.UnlockedError), for the caller to warn of with the fix: as for
// a trust directory, refusing to make a key would be worse than the
// race. unlocked is nil where nothing can race (a read-only file system,
// a directory this user may not write: the write fails too). A dir that
// does not exist (or is not a directory) is not locked, and is no error
// here: the read or write that follows says what is missing.
//
// Readers take no lock: a server presents its key file, with the
// certificate it makes from it, and presents no public half. Only a load
// that finds a public half that is not the identity's takes it, to look
// again once a writer between its two writes is done, and to finish a
// rotation cut short (LoadHomeIdentity, checkPublicHalves).
func LockIdentity(dir string) (unlock func(), unlocked error, err error) {
	unlock, why, err := keydir.LockWriters(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return func() {}, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("tlsbridge: locking the identity's writers in %s: %w", dir, err)
	case why != nil:
		return unlock, why, nil
	}
	return unlock, nil, nil
}
