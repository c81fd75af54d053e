package authkeys

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/jwk"
)

// AcceptRotation authorizes next, the key that the client authorized by e
// announces as its next one (docs/rotation.md), under e's name with the
// attributes of e's key — comment, expires, from, accept_rotation and any
// other — in a file of its own beside e's (Add with AddBeside). e must
// accept rotation (Entry.AcceptRotation). A key already authorized, under
// any name, is left as it is.
func (s *Store) AcceptRotation(e *Entry, next *jwk.Key) (*Entry, error) {
	if e == nil || !e.AcceptRotation {
		return nil, errors.New("authkeys: the entry does not accept rotation")
	}
	keys, err := jwk.ReadFile(e.File)
	if err != nil {
		return nil, err
	}
	// The first entry of the key, as the store takes it (the first entry
	// of a key wins, in a file too): a later copy's attributes may lack
	// the "from" and "expires" that limit the client.
	var cur *jwk.Key
	for _, k := range keys {
		if k.SPKIHash() == e.SPKIHash {
			cur = k
			break
		}
	}
	if cur == nil {
		return nil, fmt.Errorf("authkeys: authorized key %s is no longer in %s: not authorizing its next key", e.Fingerprint, e.File)
	}
	// Decide again on the current key: it may have been revoked, or its
	// entry expired, since the decision that handed e over. (An address
	// outside "from" is no matter here: the caller decided with the
	// client's.)
	s.Loader().Reload()
	switch d := s.Decide(e.SPKIHash, netip.Addr{}); d.Verdict {
	case Authorized, WrongNetwork:
	default:
		return nil, fmt.Errorf("authkeys: not authorizing the next key of %s: it is %v now", e.Fingerprint, d.Verdict)
	}
	pk := next.PublicKey()
	pk.Attrs = cur.Attrs.Clone()
	delete(pk.Attrs, jwk.AttrKeyID) // the current key's ID, not the next one's
	return s.Add(pk, e.Name, AddBeside)
}

// SetAcceptRotation marks (or, with on false, unmarks) the entries named
// name in the authorized-keys directory as accepting rotation: it
// rewrites each one's file atomically with "accept_rotation" set. Entries
// of that name elsewhere (a single authorized_keys file) are refused, and
// so is a name with no entry (*NotFoundError).
func (s *Store) SetAcceptRotation(name string, on bool) ([]*Entry, error) {
	s.Loader().Reload()
	var (
		done []*Entry
		dir  string
	)
	if len(s.opts.Dirs) > 0 {
		dir, _ = filepath.Abs(s.opts.Dirs[0])
	}
	for _, e := range s.Entries() {
		if e.Name != name {
			continue
		}
		if filepath.Dir(e.File) != dir {
			return done, fmt.Errorf("authkeys: %s is in %s, not in the authorized-keys directory: edit it there (\"%s\": %t)", name, e.File, jwk.AttrAcceptRotation, on)
		}
		keys, err := jwk.ReadFile(e.File)
		if err != nil {
			return done, err
		}
		if len(keys) != 1 {
			return done, fmt.Errorf("authkeys: %s holds %d keys: mark the entry by hand (\"%s\": %t)", e.File, len(keys), jwk.AttrAcceptRotation, on)
		}
		k := keys[0]
		if k.Attrs == nil {
			k.Attrs = jwk.Attributes{}
		}
		k.Attrs[jwk.AttrAcceptRotation] = json.RawMessage(fmt.Sprint(on))
		f := jwk.JWK
		if filepath.Ext(e.File) == ".pem" {
			f = jwk.PEM
		}
		data, err := k.MarshalPublic(f)
		if err != nil {
			return done, err
		}
		if err := atomicfile.Write(e.File, data, 0o644); err != nil {
			return done, err
		}
		s.Loader().Reload(e.File)
		done = append(done, e)
	}
	if len(done) == 0 {
		return nil, &NotFoundError{Query: name}
	}
	return done, nil
}
