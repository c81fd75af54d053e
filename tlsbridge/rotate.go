package tlsbridge

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
	homedir "github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/jwk"
)

// Rotation is what RotateHome did.
type Rotation struct {
	// Old is nil, and OldFile empty, when the home had no identity and
	// its next key became it (RotateHome).
	Old, New *jwk.Key
	// OldFile is where the replaced identity was kept (key.old.*), and
	// KeyFile the identity's file now.
	OldFile, KeyFile string
	// Unlocked says why the rotation went ahead without the lock of the
	// home's identity writers (LockIdentity; a *keydir.UnlockedError),
	// nil when it had it: another writer of the identity at the same
	// moment could have left a public half that is not the key's.
	Unlocked error
	// Finished: the home had no next key, but a rotation cut short
	// before its last step, which this one made — the identity's public
	// half written as PublicFile — moving no key (Old nil, New the
	// identity, KeyFile its file).
	Finished   bool
	PublicFile string
}

// NoNextKeyError means a home has no next key to rotate to.
type NoNextKeyError struct{ Home string }

func (e *NoNextKeyError) Error() string {
	return fmt.Sprintf("tlsbridge: no next key in %s (looked for %v)", e.Home, homedir.NextNames())
}

// RotateHome makes the home's next key (key.next.*) its identity: the
// identity is first kept as key.old.<UTC time><ext> (a hard link, which
// never replaces a file), then the next key is renamed over it, and its
// public half becomes pub_key.*. At every moment the home holds a
// complete identity — the old one, then the new one — so a process that
// watches it (IdentityWatcher) goes from one to the other for its next
// handshakes (docs/design.md, "Announced rotation"). With a CA-issued
// cert.pem, the certificate must already be the next key's. The keys
// moved are the keys read and checked: one replaced meanwhile stops the
// rotation with a *ReplacedError, the home put back as it was (a key
// found that cannot go back as the next key, another having been made
// meanwhile, is kept as key.found.*: nothing is lost).
//
// A home whose identity was removed after it announced its next key
// (NextKeyWithoutIdentityError) has its next key made the identity, with
// no identity to keep (Rotation.Old nil).
//
// It holds the lock of the home's identity writers (LockIdentity) from
// its first read to its last write: a keytool gen of the same home waits
// for it, and it for a gen. Where the lock cannot be had it goes ahead,
// and Rotation.Unlocked says why.
//
// Killed between the rename of the next key and the write of its public
// half, it leaves pub_key.* the previous identity's: the next load of the
// home (LoadHomeIdentity) finishes it, writing the public half, and so
// does RotateHome run again (Rotation.Finished).
func RotateHome(home string) (*Rotation, error) {
	unlock, unlocked, err := LockIdentity(home)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := rotateHome(home)
	if r != nil {
		r.Unlocked = unlocked
	}
	return r, err
}

// rotateHome is RotateHome, under the home's lock.
func rotateHome(home string) (*Rotation, error) {
	h := homedir.Dir(home)
	cur, err := jwk.FindIdentity(home)
	var none *jwk.NoIdentityError
	if errors.As(err, &none) {
		return promoteNext(home, err)
	}
	if err != nil {
		return nil, err
	}
	nextFile, err := jwk.FindNextKey(home)
	if err != nil {
		return nil, err
	}
	old, err := ReadHomeKey(home, cur)
	if err != nil {
		return nil, err
	}
	if nextFile == "" {
		return finishRotation(home, cur, old)
	}
	next, err := ReadHomeKey(home, nextFile)
	if err != nil {
		return nil, err
	}
	if err := certFitsNext(h.Cert(), next); err != nil {
		return nil, err
	}
	ext := filepath.Ext(nextFile)
	r := &Rotation{Old: old, New: next, OldFile: h.Old(time.Now().UTC().Format("20060102T150405Z"), filepath.Ext(cur)), KeyFile: filepath.Join(home, "key"+ext)}
	if err := os.Link(cur, r.OldFile); err != nil {
		return nil, fmt.Errorf("tlsbridge: keeping the identity as %s: %w", r.OldFile, err)
	}
	if err := checkMoved(home, cur, r.OldFile, old); err != nil {
		// Nothing else has moved: the link made is all there is to undo.
		if err.Undo = os.Remove(r.OldFile); err.Undo != nil {
			err.Fix = "remove " + r.OldFile
		}
		return nil, err
	}
	// The next key takes the identity's own name, in one rename, even
	// when it has another format (keys are read by their content): then
	// it is renamed to its format's name, in another. The home holds one
	// identity at every moment. Renamed to key.pem beside key.json, which
	// was removed after the check, a kill in between left two identities,
	// which nothing loads (found by review, 2026-12-05).
	keyFile := r.KeyFile
	r.KeyFile = cur
	if err := os.Rename(nextFile, cur); err != nil {
		return nil, fmt.Errorf("tlsbridge: the identity is still %s (also kept as %s): %w", cur, r.OldFile, err)
	}
	if err := checkMoved(home, nextFile, cur, next); err != nil {
		err.Fix, err.Undo = putBack(home, cur, nextFile, r)
		return nil, err
	}
	if keyFile != cur {
		if err := os.Rename(cur, keyFile); err != nil {
			return r, fmt.Errorf("tlsbridge: the identity is the next key, but still in %s, not %s: %w", cur, keyFile, err)
		}
		r.KeyFile = keyFile
	}
	if err := atomicfile.SyncDir(home); err != nil {
		return r, err
	}
	return r, rotatePublic(h, next, ext)
}

// finishRotation is RotateHome in a home with no next key: where a
// rotation was cut short before it wrote the identity's public half (the
// state a load finishes too: checkPublicHalves), the user who runs rotate
// again gets it finished, not only told there is no next key; else
// *NoNextKeyError.
func finishRotation(home, cur string, k *jwk.Key) (*Rotation, error) {
	st, err := stalePublic(home, cur, k)
	if err != nil {
		return nil, err
	}
	if !st.leftover {
		return nil, &NoNextKeyError{Home: home}
	}
	if err := finishPublic(home, cur, k, st); err != nil {
		return nil, err
	}
	return &Rotation{New: k, KeyFile: cur, Finished: true, PublicFile: homedir.PublicOf(cur, filepath.Ext(cur))}, nil
}

// promoteNext is RotateHome in a home with no identity (none, its
// *jwk.NoIdentityError) but a next key — a home whose identity was
// removed after it announced the next key (NextKeyWithoutIdentityError):
// the next key becomes the identity, as a rotation would have made it,
// and there is no identity to keep (Rotation.Old nil). It is linked to
// the identity's name (a hard link never replaces a file: an identity
// made meanwhile by a writer that took no lock stays), checked as
// RotateHome checks its moves, and only then loses its next key's name.
// Without a next key, none is the error.
func promoteNext(home string, none error) (*Rotation, error) {
	nextFile, err := jwk.FindNextKey(home)
	if err != nil {
		return nil, err
	}
	if nextFile == "" {
		return nil, none
	}
	next, err := ReadHomeKey(home, nextFile)
	if err != nil {
		return nil, err
	}
	h := homedir.Dir(home)
	if err := certFitsNext(h.Cert(), next); err != nil {
		return nil, err
	}
	ext := filepath.Ext(nextFile)
	r := &Rotation{New: next, KeyFile: filepath.Join(home, "key"+ext)}
	if err := os.Link(nextFile, r.KeyFile); err != nil {
		return nil, fmt.Errorf("tlsbridge: making the next key %s the identity %s: %w", nextFile, r.KeyFile, err)
	}
	if err := checkMoved(home, nextFile, r.KeyFile, next); err != nil {
		if err.Undo = os.Remove(r.KeyFile); err.Undo != nil {
			err.Fix = "remove " + r.KeyFile
		}
		return nil, err
	}
	if err := os.Remove(nextFile); err != nil {
		return r, fmt.Errorf("tlsbridge: the identity is the next key, %s, but its next key's name %s could not be removed: %w", r.KeyFile, nextFile, err)
	}
	if err := atomicfile.SyncDir(home); err != nil {
		return r, err
	}
	return r, rotatePublic(h, next, ext)
}

// ReplacedError means that RotateHome, having moved a key file of the
// home, found under the new name another key than the one it had read and
// checked there: the file was replaced in between, by the home's owner
// (the only one the strict-modes rule lets write there) — a `keytool gen
// --next --force` run during the rotation, say. The rotation stops, and
// the home is put back as it was (Undo nil) or, failing that, Fix says
// what to do.
type ReplacedError struct {
	// File was read and checked, then replaced before it was moved to
	// Moved: the identity, kept as key.old.*, or the next key, renamed
	// to the identity's name.
	File, Moved string
	// Read is the fingerprint of the key read and checked, Found that of
	// the key found under Moved, or "" when none loads: Err says why.
	Read, Found string
	Err         error
	// Undo is why the home could not be put back as it was, and Fix
	// where the keys are and what is left to do by hand, if anything (a
	// key found that could not go back as the next key is kept as
	// key.found.*, and nothing is left to do); both empty when it was.
	Undo error
	Fix  string
}

func (e *ReplacedError) Error() string {
	found := e.Found
	if found == "" {
		found = fmt.Sprintf("no key that loads: %v", e.Err)
	}
	msg := fmt.Sprintf("tlsbridge: not rotating: %s was replaced while the rotation moved it to %s (it read and checked %s, then found %s)",
		e.File, e.Moved, e.Read, found)
	if e.Undo == nil {
		return msg + "; the home is as it was: check its keys and rotate again"
	}
	return fmt.Sprintf("%s, and the home could not be put back as it was (%v): %s", msg, e.Undo, e.Fix)
}

func (e *ReplacedError) Unwrap() error { return e.Err }

// checkMoved reads the key RotateHome moved from file to moved, as it
// read it before (ReadHomeKey), and fails unless it is the key read then,
// want. The move is by name — a hard link for the identity kept, a rename
// for the next key — so that the files keep their owner and mode (a
// root-run rotation that wrote key.* anew, from the bytes it had read,
// would leave a service a key it cannot read) and the next key becomes
// the identity in one step, never both at once. A name is not the file
// read, though: this read, after the move, is what proves that the key
// on disk is the one checked, whose public half the rotation writes and
// reports. A file changed after it is a change made after the rotation.
func checkMoved(home, file, moved string, want *jwk.Key) *ReplacedError {
	got, err := ReadHomeKey(home, moved)
	if err == nil && got.Equal(want) {
		return nil
	}
	e := &ReplacedError{File: file, Moved: moved, Read: want.Fingerprint(), Err: err}
	if err == nil {
		e.Found = got.Fingerprint()
	}
	return e
}

// putBack undoes a rotation whose next key checkMoved refused, once the
// next key file has been renamed to r.KeyFile: the key found there goes
// back to nextFile (a hard link, which never replaces a next key made
// meanwhile) or, when that fails, to a name of its own (keepFound), and
// the identity kept in r.OldFile back to cur. It returns what is left to
// do by hand, with why, when a step fails.
//
// The key found is a key the home's owner made (`keytool gen --next
// --force` during the rotation), and r.KeyFile may be its only copy: no
// step, and no advice followed to the letter, may move anything over it
// or remove it before it has another name.
func putBack(home, cur, nextFile string, r *Rotation) (string, error) {
	kept, linkErr := nextFile, os.Link(r.KeyFile, nextFile)
	if linkErr != nil {
		var err error
		if kept, err = keepFound(home, r.KeyFile, filepath.Ext(nextFile)); err != nil {
			return onlyCopy(cur, r), errors.Join(linkErr, err)
		}
	}
	// The next key was renamed to the identity's own name (r.KeyFile is
	// cur): the previous identity goes back over it.
	if err := os.Rename(r.OldFile, cur); err != nil {
		return fmt.Sprintf("the identity %s holds the key found, also kept as %s; the previous identity, whose public half pub_key.* still is, is kept as %s: move it back to %s", cur, kept, r.OldFile, cur), err
	}
	if err := atomicfile.SyncDir(home); err != nil {
		return fmt.Sprintf("the home is put back, the key found kept as %s, but may not survive a crash: check its keys and rotate again", kept), err
	}
	if linkErr != nil {
		return fmt.Sprintf("the previous identity is back, announcing %s, a next key made meanwhile; the key found is kept as %s", nextFile, kept), linkErr
	}
	return "", nil
}

// onlyCopy is the advice when the key found in r.KeyFile has no other
// name: it is moved away before the previous identity is put back.
func onlyCopy(cur string, r *Rotation) string {
	return fmt.Sprintf("the identity %s holds the key found, its only copy; the previous identity, whose public half pub_key.* still is, is kept as %s: move %s to a name of its own, then move %s back to %s",
		cur, r.OldFile, cur, r.OldFile, cur)
}

// keepFound gives file, the key a put-back found and cannot put back as
// the next key, a name of its own in the home: key.found.<UTC time>.<128
// random bits><ext>, ext the next key's (file is the identity's name), a
// hard link (the file's owner and mode, 0600, kept; one already there is
// never replaced), synced.
func keepFound(home, file, ext string) (string, error) {
	kept := homedir.Dir(home).Found(foundStamp(), ext)
	if err := os.Link(file, kept); err != nil {
		return "", fmt.Errorf("tlsbridge: keeping the key found as %s: %w", kept, err)
	}
	if err := atomicfile.SyncDir(home); err != nil {
		return "", fmt.Errorf("tlsbridge: keeping the key found as %s: %w", kept, err)
	}
	return kept, nil
}

// foundStamp is the part of a key.found.* name that no file holds: the
// time, and 128 random bits. A variable for tests.
var foundStamp = func() string {
	return time.Now().UTC().Format("20060102T150405Z") + "." + rand.Text()
}

// certFitsNext refuses a CA-issued certificate (cert.pem) that is not for
// the next key: after the rotation the identity would not load. No
// certificate is fine.
func certFitsNext(certFile string, next *jwk.Key) error {
	if _, err := os.Lstat(certFile); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	data, err := readCertFile(certFile)
	if err != nil {
		return err
	}
	if _, err := NewIdentityWithChain(next, certFile, data); err != nil {
		return fmt.Errorf("tlsbridge: not rotating: %w", err)
	}
	return nil
}

// rotatePublic writes the new identity's public half as pub_key<ext> and
// removes the other public files (the next key's, the old identity's in
// another format).
func rotatePublic(h homedir.Dir, next *jwk.Key, ext string) error {
	pub := filepath.Join(string(h), "pub_key"+ext)
	f := jwk.JWK
	if ext == ".pem" {
		f = jwk.PEM
	}
	if err := jwk.WritePublicKeyFile(pub, next, f, jwk.Overwrite); err != nil {
		return fmt.Errorf("tlsbridge: the identity is rotated, but its public half %s could not be written: %w", pub, err)
	}
	for _, p := range append(h.Public(), h.NextPublic()...) {
		if p == pub {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tlsbridge: the identity is rotated, but %s could not be removed: %w", p, err)
		}
	}
	if err := atomicfile.SyncDir(string(h)); err != nil {
		return fmt.Errorf("tlsbridge: the identity is rotated, but the removal of its old public halves could not be synced: %w", err)
	}
	return nil
}
