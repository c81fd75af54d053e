package tlsbridge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/keytool/keytool/internal/atomicfile"
	homedir "github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/jwk"
)

// PublicKeyError means a public half of the home's identity, pub_key.*,
// is not the identity's public key: it holds another key, several, or
// none that loads (Err). pub_key.* is what users copy to the servers
// and clients that are to trust the identity: one that names another key
// has them authorize or pin a key the home never presents — the previous
// identity's, perhaps rotated away because it leaked. So the home does
// not load (LoadHomeIdentity) until it holds the identity's public half.
//
// It is not rewritten by the load, as a rotation's leftover is
// (Rotated): keytool never writes such a file, so it was written by
// someone else — a hand edit, another home's pub_key.json copied in, a
// key.* replaced without its public half — and which of the two files
// is the one meant is the owner's to say, not the load's to guess.
//
// The same holds of the next key's public half, pub_key.next.* (Next):
// it is what users copy to peers to authorize or pin the next key before
// a rotation, and one naming another key has them trust a key the home
// will never present. Where the home has no next key, a pub_key.next.*
// holding another key than the identity (which a rotation that stopped
// leaves, and the load finishes) is a public half of no key of the home
// (KeyFile and Key empty). And it holds of the public half beside a key
// loaded by its file name (LoadIdentity: pub_NAME.* beside NAME.key,
// which keytool gen -i writes there).
type PublicKeyError struct {
	File    string // the public half: pub_key.*, pub_key.next.*, pub_NAME.*
	Found   string // the fingerprint of the key it holds; "" when it holds no one key (Err)
	KeyFile string // its private key: key.*, key.next.*, the file -i names; "" for a pub_key.next.* of a home with no next key
	Key     string // that key's fingerprint
	// Next: File is the public half of the home's next key (pub_key.next.*).
	Next bool
	// Rotated: a rotation stopped before its last step, and the load
	// that finishes it could not write File, or remove it (Err).
	Rotated bool
	Err     error
}

func (e *PublicKeyError) Error() string {
	if e.Rotated {
		return fmt.Sprintf("tlsbridge: a rotation stopped before its last step, and the public half of the identity %s (key %s) could not be written as %s: %v",
			e.KeyFile, e.Key, e.File, e.Err)
	}
	found := "key " + e.Found
	if e.Found == "" {
		found = fmt.Sprintf("no one key (%v)", e.Err)
	}
	switch {
	case e.Next && e.KeyFile == "":
		return fmt.Sprintf("tlsbridge: %s holds %s, but the home has no next key: it is what is copied to peers, so the home is not loaded until it holds the public half of the home's next key, or is gone",
			e.File, found)
	case e.Next:
		return fmt.Sprintf("tlsbridge: %s holds %s, not the public half of the next key %s (key %s): it is what is copied to peers, so the home is not loaded until it holds the next key's public key",
			e.File, found, e.KeyFile, e.Key)
	}
	return fmt.Sprintf("tlsbridge: %s holds %s, not the public half of the identity %s (key %s): it is what is copied to peers, so the identity is not loaded until it holds its public key",
		e.File, found, e.KeyFile, e.Key)
}

func (e *PublicKeyError) Unwrap() error { return e.Err }

// staleHalves is what checkPublicHalves found wrong with a home's public
// files: the pub_key.* that are not the identity's (wrong), and whether
// a rotation that stopped before its last step left them (leftover), with
// the pub_key.next.* it left (nextPub); and the pub_key.next.* that are
// neither the next key's public half nor such a leftover (wrongNext).
type staleHalves struct {
	wrong     []*PublicKeyError
	wrongNext []*PublicKeyError
	nextPub   []string
	leftover  bool
}

// none reports whether nothing is wrong.
func (st *staleHalves) none() bool {
	return len(st.wrong) == 0 && len(st.wrongNext) == 0 && !st.leftover
}

// checkPublicHalves makes sure that every public half of the home's
// identity (pub_key.*) is the public key of k, the identity read from
// keyFile, and returns the identity as it is once it is.
//
// RotateHome renames the next key over the identity, then writes its
// public half: killed in between (or the machine lost), pub_key.* still
// held the previous identity's key, and pub_key.next.* the identity's —
// the file users copy to their peers naming the key rotated away, which
// every command and a server's restart took as it was (found by review,
// 2026-12-05). A load that finds that state finishes the rotation: it
// writes pub_key<ext> (atomically, 0644, as RotateHome does) and removes
// what RotateHome's last step removes. A public half that is no such
// leftover is refused (*PublicKeyError), never rewritten. A load whose
// user may not write the home cannot finish a leftover: it loads the
// identity, and leaves the home as it is for a writer (mayNotWrite).
//
// The next key's public halves (pub_key.next.*) are checked the same
// way against the next key (key.next.*): gen --next removes them before
// it writes the key and writes the new one after, so that killed at any
// moment it leaves the next key's public half or none, never another
// key's (docs/design.md, "Concurrent writers"); one that holds another
// key was written by someone else, and is refused. A missing public
// half is no error, as a missing pub_key.* is not: nothing is copied
// from it.
//
// The files are looked at again under the lock of the identity's
// writers (LockIdentity; locked: the caller holds it), with the identity
// read again there: a gen or rotate writes a key and then its public
// half under that lock, and a load between the two waits for the second
// rather than refuse, or "finish", what is only half written.
func checkPublicHalves(home, keyFile string, k *jwk.Key, locked bool) (*jwk.Key, error) {
	st, err := stalePublic(home, keyFile, k)
	if err != nil || st.none() {
		return k, err
	}
	if !locked {
		unlock, _, err := LockIdentity(home)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if keyFile, k, err = readIdentity(home); err != nil {
			return nil, err
		}
		if st, err = stalePublic(home, keyFile, k); err != nil {
			return nil, err
		}
	}
	switch {
	case st.leftover:
		// A load whose user may not write the home (a server run as a
		// user of its own, a read-only mount) leaves the last step to a
		// writer (mayNotWrite): the identity, key.*, is the key the
		// rotation made, and a server presents no public half. Refused,
		// the server did not start, or its reload made between rotate's
		// rename and its write (such a user cannot take the lock, so
		// does not wait for rotate) kept the key rotated away (found by
		// review, 2026-12-05, late).
		if err := finishPublic(home, keyFile, k, st); err != nil && !mayNotWrite(err) {
			return nil, err
		}
	case len(st.wrong) > 0:
		return nil, st.wrong[0]
	}
	if len(st.wrongNext) > 0 {
		return nil, st.wrongNext[0]
	}
	return k, nil
}

// mayNotWrite reports whether err says that this user may not write the
// home: a permission refused, a read-only file system.
func mayNotWrite(err error) bool {
	return err != nil && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS))
}

// stalePublic looks at the home's public files against k, the identity
// read from keyFile.
func stalePublic(home, keyFile string, k *jwk.Key) (*staleHalves, error) {
	h := homedir.Dir(home)
	st := &staleHalves{}
	for _, p := range h.Public() {
		e, found := publicNotKeys(p, keyFile, k)
		if e == nil {
			continue
		}
		if found != nil && !st.leftover {
			st.leftover = rotatedAway(home, found)
		}
		st.wrong = append(st.wrong, e)
	}
	next, err := jwk.FindNextKey(home)
	if err != nil {
		// Several next keys are the next key's load's to refuse, where
		// one is loaded; their public halves cannot be told.
		return st, nil
	}
	var nk *jwk.Key // the next key, read once a public half of it is there
	for _, p := range h.NextPublic() {
		found, err := publicKeyIn(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case next == "" && err == nil && found.Equal(k):
			// No next key, and its public half the identity's: a
			// rotation stopped before its last step.
			st.nextPub = append(st.nextPub, p)
			st.leftover = true
			continue
		}
		e := &PublicKeyError{File: p, Next: true, Err: err}
		if next != "" {
			if nk == nil {
				if nk, err = ReadHomeKey(home, next); err != nil {
					return nil, err
				}
			}
			if e.Err == nil && found.Equal(nk) {
				continue
			}
			e.KeyFile, e.Key = next, nk.Fingerprint()
		}
		if found != nil {
			e.Found = found.Fingerprint()
		}
		st.wrongNext = append(st.wrongNext, e)
	}
	return st, nil
}

// checkPublicBeside makes sure that every public half beside keyFile, a
// private key loaded by its file name (LoadIdentity; homedir.PublicBeside:
// pub_NAME.* beside NAME.key, which keytool gen -i writes), holds k, the
// key read from it. The public half is what is copied to peers, as a
// home's pub_key.* is: one naming another key has them authorize or pin
// a key the identity never presents, so the key is not loaded until it
// is put right (*PublicKeyError). OpenSSH's ssh -i takes id_x as it is,
// whatever id_x.pub holds, but the harm is the same: the .pub is what
// goes into authorized_keys; keytool checks the one file it knows to be
// the key's public half, as it checks the home's (docs/design.md,
// "Concurrent writers"). A missing one is no error, nor is a key file
// keytool did not make (nothing named so beside it). Such a key has no
// rotation, so nothing is finished; a mismatch is looked at again under
// the lock of the writers of the key's directory, which gen -i holds
// from its key to its public half.
func checkPublicBeside(keyFile string, k *jwk.Key) (*jwk.Key, error) {
	wrong := wrongBeside(keyFile, k)
	if wrong == nil {
		return k, nil
	}
	unlock, _, err := LockIdentity(filepath.Dir(keyFile))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if k, err = jwk.ReadPrivateKeyFile(keyFile); err != nil {
		return nil, err
	}
	if wrong = wrongBeside(keyFile, k); wrong != nil {
		return nil, wrong
	}
	return k, nil
}

// wrongBeside is the first public half beside keyFile that is not k's.
func wrongBeside(keyFile string, k *jwk.Key) *PublicKeyError {
	for _, p := range homedir.PublicBeside(keyFile) {
		if e, _ := publicNotKeys(p, keyFile, k); e != nil {
			return e
		}
	}
	return nil
}

// publicNotKeys is the *PublicKeyError of the public file p when it is
// not k's public half (k read from keyFile) — another key, none, several
// — with the key it holds, if one; nil where p holds k or is not there.
func publicNotKeys(p, keyFile string, k *jwk.Key) (*PublicKeyError, *jwk.Key) {
	found, err := publicKeyIn(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err == nil && found.Equal(k):
		return nil, nil
	}
	e := &PublicKeyError{File: p, KeyFile: keyFile, Key: k.Fingerprint(), Err: err}
	if found != nil {
		e.Found = found.Fingerprint()
	}
	return e, found
}

// publicKeyIn reads the one key of the public file p: fs.ErrNotExist
// where there is none, an error where it holds no key, or several.
func publicKeyIn(p string) (*jwk.Key, error) {
	if _, err := os.Lstat(p); err != nil {
		return nil, err
	}
	keys, err := jwk.ReadFileAnyUse(p)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("%d keys", len(keys))
	}
	return keys[0], nil
}

// rotatedAway reports whether k is the key of a previous identity a
// rotation kept (key.old.*): a pub_key.* holding it is what a rotation
// that stopped before its last step leaves.
func rotatedAway(home string, k *jwk.Key) bool {
	entries, err := os.ReadDir(home)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(entries, func(e os.DirEntry) bool {
		if !homedir.IsOld(e.Name()) {
			return false
		}
		old, err := ReadHomeKey(home, filepath.Join(home, e.Name()))
		return err == nil && old.Equal(k)
	})
}

// finishPublic makes RotateHome's last step, which a rotation that
// stopped left undone (st.leftover): the identity's public half written
// as pub_key<ext> of the identity's file where that is missing or wrong,
// the other public halves that are not its removed, and the
// pub_key.next.* that held it.
func finishPublic(home, keyFile string, k *jwk.Key, st *staleHalves) error {
	pub := homedir.PublicOf(keyFile, filepath.Ext(keyFile))
	fail := func(file string, err error) error {
		return &PublicKeyError{File: file, KeyFile: keyFile, Key: k.Fingerprint(), Rotated: true, Err: err}
	}
	_, missing := os.Lstat(pub)
	if missing != nil || slices.ContainsFunc(st.wrong, func(e *PublicKeyError) bool { return e.File == pub }) {
		f := jwk.JWK
		if filepath.Ext(keyFile) == ".pem" {
			f = jwk.PEM
		}
		if err := jwk.WritePublicKeyFile(pub, k, f, jwk.Overwrite); err != nil {
			return fail(pub, err)
		}
	}
	gone := st.nextPub
	for _, e := range st.wrong {
		if e.File != pub {
			gone = append(gone, e.File)
		}
	}
	for _, p := range gone {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(p, err)
		}
	}
	if len(gone) > 0 {
		// Back after a power loss, a wrong public half would stop the
		// home from loading again.
		if err := atomicfile.SyncDir(filepath.Dir(gone[0])); err != nil {
			return fail(gone[0], err)
		}
	}
	return nil
}
