package authkeys

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
)

// AcceptRotation authorizes next, the key that the client authorized by e
// announces as its next one (docs/rotation.md), under e's name with the
// attributes of e's key — comment, expires, from, accept_rotation and any
// other — in a file of its own beside e's (Add with AddBeside). e must
// accept rotation (Entry.AcceptRotation). A key already authorized, under
// any name, is left as it is. A name holds at most MaxNextKeys such
// files (*NextKeysLimitError), counted in Add's step under the
// directory's lock, so that servers sharing it cannot each find room.
// The store does not see the announcement:
// the caller must have checked that next proved possession — signed its
// announcement by e's key — and is no weaker (tlsbridge.AnnouncedKeys,
// docs/design.md "Announced rotation"), or a client could have anyone's
// key authorized under its name.
func (s *Store) AcceptRotation(e *Entry, next *jwk.Key) (*Entry, error) {
	s.waitLoaded()
	if e == nil || !e.AcceptRotation {
		return nil, errors.New("authkeys: the entry does not accept rotation")
	}
	// One at a time, so that connections at once cannot each find room
	// under the bound and all add.
	s.rotating.Lock()
	defer s.rotating.Unlock()
	keys, err := s.readEntryFile(e.File)
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
	d := s.Decide(e.SPKIHash, netip.Addr{})
	switch d.Verdict {
	case Authorized, WrongNetwork:
	default:
		return nil, fmt.Errorf("authkeys: not authorizing the next key of %s: it is %v now", e.Fingerprint, d.Verdict)
	}
	// And on its entry: e is what the store held at the decision, which
	// may predate an admin's `authorize --no-accept-rotation` (another
	// process, read by the server's watch later — up to a minute later
	// where it falls back to periodic rescans), or a rename. The entry in effect
	// now must still be e's — same file, same name — and accept rotation
	// (found by review: a stale e authorized the next key of an entry
	// opted out; TestAcceptRotationRechecksTheMark). The file read must
	// say so too: it is what the next key's entry is copied from.
	if now := d.Entry; now == nil || !now.AcceptRotation || now.Name != e.Name || now.File != e.File ||
		string(cur.Attrs[jwk.AttrAcceptRotation]) != "true" {
		return nil, fmt.Errorf("authkeys: not authorizing the next key of %s: its entry %q in %s no longer accepts rotation", e.Fingerprint, e.Name, e.File)
	}
	// Nor while a file of authorized keys is skipped: the next key may be
	// in it, under another name or with tighter limits, and the entry
	// made here could be the one in effect once it loads again (the
	// first entry of a key wins). Skipped trust never widens trust
	// (found by review; TestAcceptRotationNotWhileSkipped).
	if nd := s.Decide(next.SPKIHash(), netip.Addr{}); nd.Incomplete {
		return nil, fmt.Errorf("authkeys: not authorizing next key %s of %q while authorized-keys files are skipped: it may be in one of them", next.Fingerprint(), e.Name)
	}
	if held := s.nextKeys(e.Name); len(held) >= MaxNextKeys {
		return nil, &NextKeysLimitError{Name: e.Name, Fingerprint: next.Fingerprint(), Held: held}
	}
	pk := next.PublicKey()
	pk.Attrs = cur.Attrs.Clone()
	delete(pk.Attrs, jwk.AttrKeyID) // the current key's ID, not the next one's
	return s.Add(pk, e.Name, AddBeside)
}

// readEntryFile reads the keys of an entry's file again, under the
// strict-modes rule that loaded it (keydir.Loader.ReadFile): what it
// holds is copied into a file of the store's own, which the rule then
// trusts, so it must be what a reload would trust — not what another
// user wrote in a file given to them since it was loaded.
func (s *Store) readEntryFile(path string) ([]*jwk.Key, error) {
	data, _, err := s.Loader().ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authkeys: %w", err)
	}
	keys, err := jwk.Parse(data)
	var pe *jwk.ParseError
	if errors.As(err, &pe) && pe.File == "" {
		pe.File = path
	}
	return keys, err
}

// MaxNextKeys is the most next keys a name holds by rotation
// (AcceptRotation: NAME+KEYID.json files). A client announces its next
// keys in a certificate it makes itself, and can make another at each
// connection: without a bound, one accepting entry — or whoever stole
// its key — could have the server authorize keys, and write files,
// without end. It is the most a certificate announces (tlsbridge's
// MaxAnnounced): a client rotating keeps one or two, and the admin
// removes the old keys (docs/rotation.md).
const MaxNextKeys = 4

// NextKeysLimitError means a client's next key was not authorized: its
// name already holds MaxNextKeys keys added by rotation (Held, their
// files), which must be removed before it may add another.
type NextKeysLimitError struct {
	Name        string
	Fingerprint string // the next key's
	Held        []*Entry
}

func (e *NextKeysLimitError) Error() string {
	files := make([]string, len(e.Held))
	for i, h := range e.Held {
		files[i] = h.File
	}
	return fmt.Sprintf("authkeys: not authorizing next key %s of %q: the name already holds %d keys added by rotation (%s), the most it may: remove those no longer used",
		e.Fingerprint, e.Name, len(e.Held), strings.Join(files, ", "))
}

// nextKeys returns the entries of name in rotation files
// (NAME+KEYID.json, KEYID part of their key's: isBesideName, which takes
// the names earlier versions wrote too), in file order.
func (s *Store) nextKeys(name string) []*Entry {
	var out []*Entry
	for _, e := range s.named(s.Loader().Snapshot(), name) {
		if isBesideName(fileEntryName(e.File), name, e.SPKIHash) {
			out = append(out, e)
		}
	}
	return out
}

// rotationBeforeEdit, when set (by a test), is called by
// SetAcceptRotation between its first read of an entry's file and its
// rewrite: where another writer's change lands in a race.
var rotationBeforeEdit func(path string)

// EntryGoneError means the entry SetAcceptRotation was marking left its
// file (removed, or its key replaced) between the store's read and the
// rewrite: nothing was written, so that the removal stands.
type EntryGoneError struct {
	Name, File string
}

func (e *EntryGoneError) Error() string {
	return fmt.Sprintf("authkeys: the entry %q left %s while it was being marked (removed or rewritten meanwhile): nothing written", e.Name, termtext.Safe(e.File))
}

// SetAcceptRotation marks (or, with on false, unmarks) the entries named
// name in the authorized-keys directory as accepting rotation: it
// rewrites each one's file atomically with "accept_rotation" set. Entries
// of that name elsewhere (a single authorized_keys file) are refused, and
// so is a name with no entry (*NotFoundError).
func (s *Store) SetAcceptRotation(name string, on bool) ([]*Entry, error) {
	s.waitLoaded()
	s.Loader().Reload()
	var (
		done []*Entry
		dir  string
	)
	if len(s.opts.Dirs) > 0 {
		dir, _ = filepath.Abs(s.opts.Dirs[0])
	}
	for e := range s.All() {
		if e.Name != name {
			continue
		}
		if filepath.Dir(e.File) != dir {
			return done, fmt.Errorf("authkeys: %s is in %s, not in the authorized-keys directory: edit it there (\"%s\": %t)", name, e.File, jwk.AttrAcceptRotation, on)
		}
		keys, err := s.readEntryFile(e.File)
		if err != nil {
			return done, err
		}
		if len(keys) != 1 {
			return done, fmt.Errorf("authkeys: %s holds %d keys: mark the entry by hand (\"%s\": %t)", e.File, len(keys), jwk.AttrAcceptRotation, on)
		}
		if rotationBeforeEdit != nil {
			rotationBeforeEdit(e.File)
		}
		// The rewrite reads the file again under the directory's lock
		// (EditFile), as a removal does: written from the read above, a
		// removal of the entry in between (authorize --remove) would be
		// undone, its key authorized again.
		found := false
		if _, err := s.Loader().EditFile(e.File, func(k *jwk.Key) *jwk.Key {
			if k.SPKIHash() != e.SPKIHash {
				return k
			}
			found = true
			marked := *k
			marked.Attrs = k.Attrs.Clone()
			if marked.Attrs == nil {
				marked.Attrs = jwk.Attributes{}
			}
			marked.Attrs[jwk.AttrAcceptRotation] = json.RawMessage(fmt.Sprint(on))
			return &marked
		}); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return done, &EntryGoneError{Name: name, File: e.File}
			}
			return done, err
		}
		if !found {
			return done, &EntryGoneError{Name: name, File: e.File}
		}
		s.Loader().Reload(e.File)
		done = append(done, e)
	}
	if len(done) == 0 {
		return nil, &NotFoundError{Query: name}
	}
	return done, nil
}
