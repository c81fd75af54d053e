package authkeys

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// AcceptRotation decides again on the current key, after the server's
// decision that handed it the entry: a key revoked or removed in between
// authorizes nothing.
func TestAcceptRotationRechecksTheCurrentKey(t *testing.T) {
	for _, change := range []string{"revoked", "removed"} {
		t.Run(change, func(t *testing.T) {
			s, e := acceptingAlice(t, t.TempDir())
			cur, next := key(t, 1), key(t, 2)
			var err error
			if change == "revoked" {
				_, err = s.Revoke(cur)
			} else {
				_, err = s.Remove("alice")
			}
			if err != nil {
				t.Fatal(err)
			}
			if added, err := s.AcceptRotation(e, next); err == nil {
				t.Fatalf("the next key of a key %s was authorized: %s", change, added.File)
			}
			if d := s.Decide(next.SPKIHash(), netip.Addr{}); d.Verdict != Unknown {
				t.Errorf("the next key is %v", d.Verdict)
			}
		})
	}
}

// AcceptRotation gives the next key the attributes of the entry in
// effect: in a file that holds the current key twice, the first (as the
// store decides, the first entry of a key wins) — not a later copy
// without its "from" and "expires", which would let the rotated key in
// from anywhere, for ever.
func TestAcceptRotationCopiesTheEntryInEffect(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	cur, next := key(t, 1), key(t, 2)
	limited := keydirtest.WithAttrs(cur, "name", "alice", "from", "10.0.0.0/8", "expires", "2099-01-01T00:00:00Z")
	limited.Attrs[jwk.AttrAcceptRotation] = json.RawMessage("true")
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "alice.json"), keydirtest.JWK(t, limited, keydirtest.WithAttrs(cur, "name", "alice")))
	s := Load(opts)
	defer s.Close()
	e, err := s.LookupKey(cur, netip.MustParseAddr("10.1.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	if e.From == nil || !e.AcceptRotation {
		t.Fatalf("the entry in effect is not the first: %+v", e)
	}
	if _, err := s.AcceptRotation(e, next); err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(next.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != WrongNetwork {
		t.Fatalf("the next key from 127.0.0.1: %v (%+v), want wrong network", d.Verdict, d.Entry)
	}
	d := s.Decide(next.SPKIHash(), netip.MustParseAddr("10.1.2.3"))
	if d.Verdict != Authorized || !d.Entry.Expires.Equal(e.Expires) || !d.Entry.AcceptRotation || d.Entry.Name != "alice" {
		t.Fatalf("the next key from 10.1.2.3: %v, entry %+v; want the current entry's attributes", d.Verdict, d.Entry)
	}
}

// A name holds at most MaxNextKeys keys added by rotation: the next one is
// refused with the files that hold them (*NextKeysLimitError), until the
// admin removes one; the name's own file (alice.json) does not count
// (found by review: a client making a certificate per
// connection had keys authorized without end).
func TestAcceptRotationBound(t *testing.T) {
	s, e := acceptingAlice(t, t.TempDir())
	var added []*Entry
	for i := range MaxNextKeys {
		a, err := s.AcceptRotation(e, key(t, 2+i))
		if err != nil {
			t.Fatalf("next key %d: %v", i+1, err)
		}
		added = append(added, a)
	}
	over := key(t, 2+MaxNextKeys)
	_, err := s.AcceptRotation(e, over)
	var limit *NextKeysLimitError
	if !errors.As(err, &limit) || limit.Name != "alice" || len(limit.Held) != MaxNextKeys || limit.Held[0].File != added[0].File {
		t.Fatalf("next key %d: %v, want a *NextKeysLimitError naming the %d files", MaxNextKeys+1, err, MaxNextKeys)
	}
	if d := s.Decide(over.SPKIHash(), netip.Addr{}); d.Verdict != Unknown {
		t.Errorf("the key over the bound is %v", d.Verdict)
	}
	if _, err := s.Remove(added[0].Fingerprint); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptRotation(e, over); err != nil {
		t.Fatalf("once one was removed: %v", err)
	}
}

// AcceptRotation reads the current key's attributes from its file under
// the strict-modes rule, as a reload reads it: a file that became
// another user's after the decision that handed the entry over (an admin
// giving alice her own file, uid 65534 here, which she then rewrote
// without her "from") is refused, not copied into the next key's entry —
// a file of the server's own, which would have admitted the next key from
// anywhere. Before, it was read with jwk.ReadFile, which checks neither
// owner nor mode, while the key's other entry (team.json) still decided
// (found by review).
func TestAcceptRotationReadsUnderTheRule(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	cur, next := key(t, 1), key(t, 2)
	limited := keydirtest.WithAttrs(cur, "name", "alice", "from", "10.0.0.0/8")
	limited.Attrs[jwk.AttrAcceptRotation] = json.RawMessage("true")
	file := filepath.Join(opts.Dirs[0], "alice.json")
	keydirtest.Write(t, file, keydirtest.JWK(t, limited))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "team.json"), keydirtest.JWK(t, keydirtest.WithAttrs(cur, "name", "alice", "from", "10.0.0.0/8")))
	s := Load(opts) // not watching: the entry stays the one decided with
	defer s.Close()
	e, err := s.LookupKey(cur, netip.MustParseAddr("10.1.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	if e.File != file || !e.AcceptRotation {
		t.Fatalf("the entry in effect: %+v", e)
	}
	anywhere := keydirtest.WithAttrs(cur, "name", "alice")
	anywhere.Attrs[jwk.AttrAcceptRotation] = json.RawMessage("true")
	keydirtest.WriteInPlace(t, file, keydirtest.JWK(t, anywhere))
	if err := os.Chown(file, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	added, err := s.AcceptRotation(e, next)
	var pe *trustfile.PermissionError
	if !errors.As(err, &pe) || pe.Path != file {
		t.Fatalf("AcceptRotation: %v, added %+v; want a *trustfile.PermissionError naming %s", err, added, file)
	}
	if d := s.Decide(next.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != Unknown {
		t.Fatalf("the next key from 127.0.0.1: %v (%+v)", d.Verdict, d.Entry)
	}
}

// shortIDTwins are two Ed25519 keys whose key IDs share their first eight
// characters (40 bits): the name of the rotation file was NAME+ and those
// eight, so a client that made such a pair — about a million keys, a
// minute of one core — had its second next key refused as a name taken.
// (The seeds: a big-endian counter in the first four bytes.)
func shortIDTwins(t *testing.T) (*jwk.Key, *jwk.Key) {
	t.Helper()
	twin := func(n uint32) *jwk.Key {
		var seed [32]byte
		binary.BigEndian.PutUint32(seed[:], n)
		k, err := jwk.NewPublicKey(ed25519.NewKeyFromSeed(seed[:]).Public())
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := twin(0x0001da8f), twin(0x000a75e7)
	if a.KeyID()[:9] != b.KeyID()[:9] {
		t.Fatalf("the key IDs %s and %s do not share eight characters", a.KeyID(), b.KeyID())
	}
	return a, b
}

// acceptingAlice is a store whose client alice, key 1, accepts rotation,
// and her entry.
func acceptingAlice(t *testing.T, home string) (*Store, *Entry) {
	t.Helper()
	s := Load(HomeOptions(home))
	t.Cleanup(func() { s.Close() })
	cur := key(t, 1)
	if _, err := s.Add(cur, "alice", AddNew); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAcceptRotation("alice", true); err != nil {
		t.Fatal(err)
	}
	e, err := s.LookupKey(cur, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	return s, e
}

// Two next keys of a client whose key IDs share their first 40 bits both
// get authorized, each in a file of its own: the rotation file's name
// holds 160 bits of the key's ID.
func TestAcceptRotationKeysSharingShortIDs(t *testing.T) {
	s, e := acceptingAlice(t, t.TempDir())
	a, b := shortIDTwins(t)
	ea, err := s.AcceptRotation(e, a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := s.AcceptRotation(e, b)
	if err != nil {
		t.Fatalf("the second next key, its ID's first 40 bits the first's: %v", err)
	}
	if ea.File == eb.File {
		t.Fatalf("both in %s", ea.File)
	}
	for _, k := range []*jwk.Key{a, b} {
		if d := s.Decide(k.SPKIHash(), netip.Addr{}); d.Verdict != Authorized || d.Entry.Name != "alice" {
			t.Errorf("next key %s: %v", k.Fingerprint(), d.Verdict)
		}
	}
	if got := sharedNamesOf(s); got != "" {
		t.Errorf("shared names %q, want none", got)
	}
}

// Rotation files that earlier versions named with eight characters of the
// key's ID (NAME+KG4UJTP2.json) are still the client's rotation files:
// they count toward MaxNextKeys with the new ones, and are not reported
// as sharing the client's name.
func TestAcceptRotationFilesOfEarlierVersions(t *testing.T) {
	home := t.TempDir()
	s, e := acceptingAlice(t, home)
	dir := HomeOptions(home).Dirs[0]
	var held []string
	for n := 2; n < 2+MaxNextKeys-1; n++ {
		k := key(t, n)
		file := filepath.Join(dir, "alice+"+strings.ReplaceAll(k.KeyID(), ":", "")[:8]+".json")
		keydirtest.Write(t, file, keydirtest.JWK(t, keydirtest.WithAttrs(k, "name", "alice")))
		held = append(held, file)
	}
	s.Loader().Reload()
	added, err := s.AcceptRotation(e, key(t, 10))
	if err != nil {
		t.Fatal(err)
	}
	if base := filepath.Base(added.File); len(base) != len("alice+")+32+len(".json") {
		t.Errorf("the next key is in %s, want alice+ and 32 characters of its ID", base)
	}
	held = append(held, added.File)
	if got := sharedNamesOf(s); got != "" {
		t.Errorf("shared names %q, want none", got)
	}
	_, err = s.AcceptRotation(e, key(t, 11))
	var limit *NextKeysLimitError
	if !errors.As(err, &limit) || len(limit.Held) != MaxNextKeys {
		t.Fatalf("one key over the bound: %v, want a *NextKeysLimitError naming %v", err, held)
	}
	var got []string
	for _, h := range limit.Held {
		got = append(got, h.File)
	}
	slices.Sort(got)
	slices.Sort(held)
	if !slices.Equal(got, held) {
		t.Errorf("the keys held: %v, want %v", got, held)
	}
}

// AcceptRotation asks the entry in effect now, not the one the server's
// decision handed over, whether it still accepts rotation: an admin's
// `authorize --no-accept-rotation` (another process, here another store
// of the same home) that the server's store has not read yet — a watch
// that falls back to periodic rescans reads it minutes later — must stop
// the next key, and so must an entry renamed or moved to another file.
func TestAcceptRotationRechecksTheMark(t *testing.T) {
	for _, change := range []string{"unmarked", "renamed"} {
		t.Run(change, func(t *testing.T) {
			home := t.TempDir()
			s, e := acceptingAlice(t, home)
			admin := Load(HomeOptions(home))
			defer admin.Close()
			if change == "unmarked" {
				if _, err := admin.SetAcceptRotation("alice", false); err != nil {
					t.Fatal(err)
				}
			} else {
				// The same key in the same file, still accepting rotation,
				// under another name: its next key would go under the old.
				data, err := os.ReadFile(e.File)
				if err != nil {
					t.Fatal(err)
				}
				keydirtest.Write(t, e.File, []byte(strings.Replace(string(data), `"alice"`, `"carol"`, 1)))
			}
			next := key(t, 2)
			if added, err := s.AcceptRotation(e, next); err == nil {
				t.Fatalf("the next key of an entry %s since the decision was authorized: %s", change, added.File)
			}
			if d := s.Decide(next.SPKIHash(), netip.Addr{}); d.Verdict != Unknown {
				t.Errorf("the next key is %v (%+v)", d.Verdict, d.Entry)
			}
		})
	}
}

// While a file of authorized keys is skipped (here, writable by others),
// AcceptRotation authorizes nothing: the next key may be in that file,
// under another name or with tighter limits, and the entry it would get
// under the client's name could win once the file loads again — skipped
// trust never widens trust, as a client pins no announced key while a
// trusted-hosts file is skipped.
func TestAcceptRotationNotWhileSkipped(t *testing.T) {
	s, e := acceptingAlice(t, t.TempDir())
	next := key(t, 2)
	file := filepath.Join(filepath.Dir(e.File), "zed.json")
	keydirtest.Write(t, file, keydirtest.JWK(t, keydirtest.WithAttrs(next, "name", "zed", "from", "10.0.0.0/8")))
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	if added, err := s.AcceptRotation(e, next); err == nil {
		t.Fatalf("a key of a skipped file was authorized under the client's name: %s", added.File)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	if d := s.Decide(next.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != WrongNetwork || d.Entry.Name != "zed" {
		t.Fatalf("once the file loads, the key from 127.0.0.1: %v (%+v), want its own entry's wrong network", d.Verdict, d.Entry)
	}
}

// SetAcceptRotation rewrites an entry's file as a removal edits one: read
// again under the directory's lock. An authorize --remove of the entry
// that lands between the store's read and the rewrite stands — the file
// is not written back, the key stays unauthorized, and the error says
// the entry left (*EntryGoneError) — and so does a rewrite of the file
// with another key. Before, the rewrite came from the first read: the
// removed key was authorized again.
func TestSetAcceptRotationKeepsARemovalMeanwhile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		meanwhile func(t *testing.T, s *Store, path string)
	}{
		{"removed", func(t *testing.T, s *Store, path string) {
			if _, err := s.Remove("alice"); err != nil {
				t.Fatal(err)
			}
		}},
		{"rewritten with another key", func(t *testing.T, s *Store, path string) {
			keydirtest.Write(t, path, keydirtest.JWK(t, key(t, 2)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			s := Load(HomeOptions(home))
			t.Cleanup(func() { s.Close() })
			e, err := s.Add(key(t, 1), "alice", AddNew)
			if err != nil {
				t.Fatal(err)
			}
			other := Load(HomeOptions(home)) // another admin's command
			t.Cleanup(func() { other.Close() })
			rotationBeforeEdit = func(path string) { tc.meanwhile(t, other, path) }
			t.Cleanup(func() { rotationBeforeEdit = nil })
			_, err = s.SetAcceptRotation("alice", true)
			var gone *EntryGoneError
			if !errors.As(err, &gone) || gone.File != e.File || !strings.Contains(err.Error(), "nothing written") {
				t.Fatalf("SetAcceptRotation with the entry gone meanwhile: %v", err)
			}
			fresh := Load(HomeOptions(home))
			defer fresh.Close()
			if _, err := fresh.LookupKey(key(t, 1), netip.Addr{}); err == nil {
				t.Fatal("the key removed meanwhile is authorized again")
			}
			if data, err := os.ReadFile(e.File); err == nil && strings.Contains(string(data), "accept_rotation") {
				t.Fatalf("the file was rewritten: %s", data)
			}
		})
	}
}
