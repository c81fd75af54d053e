package authkeys

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A writer that does not record into the admin index (config
// management, a copy by hand) adds a file while an admin command that
// writes into the same directory runs, after the command's own write.
// The command's record must not take that file in: else the index says
// current without it, and a later authorize of another key under the
// name that file holds reads only what the index names, does not see the
// name taken, and writes a second key under it — one name, two clients
// (review of the admin index, session 22).
func TestLoadForRecordLeavesOutAnotherWritersFile(t *testing.T) {
	opts := fillHome(t, 10)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	admin, finishAdmin := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 40).SPKIHash()}, Names: []string{"alice"}})
	if _, err := admin.Add(key(t, 40), "alice", AddNew); err != nil {
		t.Fatal(err)
	}
	// Config management, before authorize ends: bob's key, in a file of
	// another name.
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "team.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 41), "name", "bob")))
	finishAdmin()
	s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 42).SPKIHash()}, Names: []string{"bob"}})
	defer finish()
	if _, err := s.Add(key(t, 42), "bob", AddNew); !errors.As(err, new(*NameExistsError)) {
		t.Fatalf("a second key under the name a file copied in while authorize ran holds: %v, want *NameExistsError", err)
	}
}

// The same for a revocation copied in while revoke runs, before its own
// write: revoke reads no stamps, and its record took the copied file in,
// so that authorize of the key it revokes did not say it is revoked.
func TestLoadForRevokeRecordLeavesOutAnotherWritersFile(t *testing.T) {
	opts := fillHome(t, 10)
	s, finish := LoadFor(opts, Lookups{})
	if _, err := s.Revoke(key(t, 39)); err != nil {
		t.Fatal(err)
	}
	finish()
	_, finish = LoadFor(opts, Lookups{}) // the revocation directory indexed
	finish()
	admin, finishAdmin := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 40).SPKIHash()}})
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "copied.json"), keydirtest.JWK(t, key(t, 41)))
	if _, err := admin.Revoke(key(t, 40)); err != nil {
		t.Fatal(err)
	}
	finishAdmin()
	s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 41).SPKIHash()}})
	defer finish()
	if _, err := s.Add(key(t, 41), "k41", AddNew); !errors.As(err, new(*RevokedError)) {
		t.Fatalf("authorize of a key whose revocation was copied in while revoke ran: %v, want *RevokedError", err)
	}
}
