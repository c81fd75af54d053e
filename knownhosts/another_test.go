package knownhosts

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// Several keys for one address (a key rollover, oVirt's re-enrolment):
// AddAnother pins a second key in a file of its own, both are admitted, a
// third is still a changed key naming both, and RemoveKey takes one away
// leaving the other.
func TestAddAnotherKey(t *testing.T) {
	const addr = "engine.example:443"
	home := t.TempDir()
	opts := HomeOptions(home)
	s := Load(opts)
	k1, k2, k3 := key(t, 1), key(t, 2), key(t, 3)
	first, err := s.Add(addr, k1)
	if err != nil {
		t.Fatal(err)
	}
	// Without AddAnother, the second key is the changed-key refusal.
	var ce *KeyChangedError
	if _, err := s.AddKey(addr, k2, AddNew); !errors.As(err, &ce) {
		t.Fatalf("AddNew of a second key: %v, want *KeyChangedError", err)
	}
	second, err := s.AddKey(addr, k2, AddAnother)
	if err != nil {
		t.Fatal(err)
	}
	wantName := "engine.example_443+" + strings.ReplaceAll(k2.KeyID(), ":", "")[:32] + ".json"
	if second != filepath.Join(opts.Dirs[0], wantName) || second == first {
		t.Fatalf("second pin in %s, want %s beside %s", second, wantName, first)
	}
	if keys, err := jwk.ReadFile(first); err != nil || len(keys) != 1 || !keys[0].Equal(k1) {
		t.Fatalf("the first pin changed: %v %v", keys, err)
	}
	// Both keys are admitted, by this store and by a fresh one.
	for _, st := range []*Store{s, Load(opts)} {
		for i, k := range []*jwk.Key{k1, k2} {
			if err := st.Check(addr, k); err != nil {
				t.Errorf("key %d: %v", i+1, err)
			}
		}
		// A third key is a changed key that names both pins.
		if err := st.Check(addr, k3); !errors.As(err, &ce) || len(ce.Want) != 2 ||
			ce.Want[0].Fingerprint == ce.Want[1].Fingerprint ||
			!slices.ContainsFunc(ce.Want, func(w PinnedKey) bool { return w.Fingerprint == k1.Fingerprint() && w.File == first }) ||
			!slices.ContainsFunc(ce.Want, func(w PinnedKey) bool { return w.Fingerprint == k2.Fingerprint() && w.File == second }) {
			t.Errorf("third key: %v, want *KeyChangedError with both pins", err)
		}
	}
	// Again: nothing written, the same file; AddNew of a pinned key too.
	if p, err := s.AddKey(addr, k2, AddAnother); err != nil || p != second {
		t.Errorf("AddAnother again: %s, %v", p, err)
	}
	if p, err := s.AddKey(addr, k2, AddNew); err != nil || p != second {
		t.Errorf("AddNew of the second, pinned, key: %s, %v", p, err)
	}
	if ents, _ := keyDirEntries(opts.Dirs[0]); len(ents) != 2 {
		t.Errorf("trusted_hosts.d holds %d files, want 2", len(ents))
	}

	// The third key is no more admitted by DecideAnother, which only
	// lets the caller's check decide.
	if d := s.DecideAnother(addr, k3.SPKIHash()); d.Verdict != Unknown {
		t.Errorf("DecideAnother of a third key: %v", d.Verdict)
	}
	if d := s.DecideAnother(addr, k1.SPKIHash()); d.Verdict != Pinned {
		t.Errorf("DecideAnother of a pinned key: %v", d.Verdict)
	}
	if d := s.Decide(addr, k3.SPKIHash()); d.Verdict != Changed {
		t.Errorf("Decide of a third key: %v", d.Verdict)
	}

	// Remove one key of the address: the other stays pinned.
	var nf *NotFoundError
	if _, err := s.RemoveKey(addr, k3.Fingerprint()); !errors.As(err, &nf) || nf.Key != k3.Fingerprint() {
		t.Fatalf("RemoveKey of an unpinned key: %v", err)
	}
	rm, err := s.RemoveKey(addr, k1.KeyID())
	if err != nil || len(rm) != 1 || rm[0].Fingerprint != k1.Fingerprint() || rm[0].File != first || rm[0].Addr != addr {
		t.Fatalf("RemoveKey: %v, %v", rm, err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("the first pin's file is left: %v", err)
	}
	if err := s.Check(addr, k2); err != nil {
		t.Errorf("the other key after RemoveKey: %v", err)
	}
	if err := s.Check(addr, k1); !errors.As(err, &ce) || len(ce.Want) != 1 || ce.Want[0].Fingerprint != k2.Fingerprint() {
		t.Errorf("the removed key: %v, want *KeyChangedError", err)
	}
}

// RemoveKey drops the address from a key's entry and keeps the key's
// other addresses; Remove of the address still takes every key.
func TestRemoveKeyKeepsOtherAddresses(t *testing.T) {
	s, opts := load(t, map[string]*jwk.Key{
		"a.json": pinned(t, 1, "a.example:1", "b.example:1"),
		"c.json": pinned(t, 2, "a.example:1"),
		"d.json": pinned(t, 3, "a.example:1"),
	})
	if _, err := s.RemoveKey("A.Example:1", key(t, 1).Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if err := s.Check("b.example:1", key(t, 1)); err != nil {
		t.Errorf("the key's other address: %v", err)
	}
	var ce *KeyChangedError
	if err := s.Check("a.example:1", key(t, 1)); !errors.As(err, &ce) {
		t.Errorf("the key at the address it lost: %v", err)
	}
	rm, err := s.Remove("a.example:1")
	if err != nil || len(rm) != 2 {
		t.Fatalf("Remove of the address: %v, %v; want both remaining keys", rm, err)
	}
	if ents, _ := keyDirEntries(opts.Dirs[0]); len(ents) != 1 || ents[0].Name() != "a.json" {
		t.Errorf("files left: %v", ents)
	}
	if _, err := s.RemoveKey("a.example:1", "not a fingerprint"); err == nil {
		t.Error("RemoveKey of a malformed fingerprint succeeded")
	}
}

// AddAnother refuses what Add refuses: a revoked key, a revocation list
// that cannot be read, and any pin while a file of pins is skipped.
func TestAddAnotherRefusals(t *testing.T) {
	const addr = "engine.example:443"
	t.Run("revoked", func(t *testing.T) {
		s, opts := load(t, map[string]*jwk.Key{"e.json": pinned(t, 1, addr)})
		keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "k2.json"), keydirtest.JWK(t, key(t, 2).PublicKey()))
		var re *RevokedError
		if _, err := s.AddKey(addr, key(t, 2), AddAnother); !errors.As(err, &re) || re.Err != nil {
			t.Fatalf("AddAnother of a revoked key: %v, want *RevokedError", err)
		}
		keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "bad.json"), []byte("nonsense"))
		if _, err := s.AddKey(addr, key(t, 3), AddAnother); !errors.As(err, &re) || re.Err == nil {
			t.Fatalf("AddAnother with an unreadable revocation list: %v, want *RevokedError with Err", err)
		}
		if ents, _ := keyDirEntries(opts.Dirs[0]); len(ents) != 1 {
			t.Errorf("trusted_hosts.d holds %d files, want 1", len(ents))
		}
	})
	t.Run("skipped", func(t *testing.T) {
		home := t.TempDir()
		opts := HomeOptions(home)
		keydirtest.Write(t, filepath.Join(opts.Dirs[0], "e.json"), keydirtest.JWK(t, pinned(t, 1, addr)))
		keydirtest.Write(t, filepath.Join(opts.Dirs[0], "bad.json"), []byte(`{"kty":"EC"`))
		s := Load(opts)
		var skipped *SkippedFilesError
		if _, err := s.AddKey(addr, key(t, 2), AddAnother); !errors.As(err, &skipped) {
			t.Fatalf("AddAnother while a pin file is skipped: %v, want *SkippedFilesError", err)
		}
		if _, err := s.AddKey("other.example:1", key(t, 2), AddAnother); !errors.As(err, &skipped) {
			t.Fatalf("AddAnother of an unpinned address while skipped: %v, want *SkippedFilesError", err)
		}
		if ents, _ := keyDirEntries(opts.Dirs[0]); len(ents) != 2 {
			t.Errorf("trusted_hosts.d holds %d files, want 2", len(ents))
		}
	})
	t.Run("invalid mode", func(t *testing.T) {
		s, _ := load(t, nil)
		if _, err := s.AddKey(addr, key(t, 1), AddMode(7)); err == nil || !strings.HasPrefix(err.Error(), "knownhosts: ") {
			t.Fatalf("AddKey with mode 7: %v", err)
		}
	})
}

// AddAnother on an address with no pin pins it as Add would, under
// FileName's name.
func TestAddAnotherFirstKey(t *testing.T) {
	s, opts := load(t, nil)
	p, err := s.AddKey("fresh.example:22", key(t, 1), AddAnother)
	if err != nil || p != filepath.Join(opts.Dirs[0], "fresh.example_22.json") {
		t.Fatalf("AddAnother of a first key: %s, %v", p, err)
	}
}

func TestAnotherFileName(t *testing.T) {
	k := key(t, 1)
	id := strings.ReplaceAll(k.KeyID(), ":", "")[:32]
	got, err := AnotherFileName("[2001:db8::1]:443", k)
	if err != nil || got != "2001_db8__1_443+"+id+".json" {
		t.Fatalf("AnotherFileName = %q, %v", got, err)
	}
	if _, err := AnotherFileName("!x", k); err == nil {
		t.Fatal("a negated pattern got a file name")
	}
}

// Two keys pinned beside an address's pin whose key IDs share their first
// eight characters (40 bits) are both pinned, each in a file of its own:
// the file's name was the address, "+" and those eight characters, and a
// host that made such a pair (about a million keys, a minute of one core)
// had its second announced key refused (FileExistsError). A pin in a file
// an earlier version named so still pins its key.
func TestAddAnotherKeysSharingShortIDs(t *testing.T) {
	const addr = "engine.example:443"
	s, opts := load(t, map[string]*jwk.Key{"engine.example_443.json": pinned(t, 1, addr)})
	var twins []*jwk.Key
	for _, n := range []uint32{0x0001da8f, 0x000a75e7} { // seeds, a big-endian counter in the first four bytes
		seed := binary.BigEndian.AppendUint32(nil, n)
		k, err := jwk.NewPublicKey(ed25519.NewKeyFromSeed(append(seed, make([]byte, 28)...)).Public())
		if err != nil {
			t.Fatal(err)
		}
		twins = append(twins, k)
	}
	if twins[0].KeyID()[:9] != twins[1].KeyID()[:9] {
		t.Fatalf("the key IDs %s and %s do not share eight characters", twins[0].KeyID(), twins[1].KeyID())
	}
	var files []string
	for _, k := range twins {
		f, err := s.AddKey(addr, k, AddAnother)
		if err != nil {
			t.Fatalf("pinning %s beside: %v", k.KeyID(), err)
		}
		files = append(files, f)
		if err := s.Check(addr, k); err != nil {
			t.Errorf("%s: %v", k.KeyID(), err)
		}
	}
	if files[0] == files[1] {
		t.Fatalf("both in %s", files[0])
	}
	old := key(t, 2)
	oldFile := filepath.Join(opts.Dirs[0], "engine.example_443+"+strings.ReplaceAll(old.KeyID(), ":", "")[:8]+".json")
	keydirtest.Write(t, oldFile, keydirtest.JWK(t, pinned(t, 2, addr)))
	s.Loader().Reload()
	if f, err := s.AddKey(addr, old, AddAnother); err != nil || f != oldFile {
		t.Errorf("a key an earlier version pinned beside: %s, %v; want it found in %s", f, err, oldFile)
	}
}

// keyDirEntries lists dir as os.ReadDir does, without the lock file
// keytool's writers of the directory take (keydir's .keytool.lock, made
// by the first of them: docs/design.md, "Concurrent writers").
func keyDirEntries(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	return slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == ".keytool.lock" }), err
}

// AddKeyAtMost's bound holds against concurrent writers: goroutines of
// one store and stores of their own on one trusted_hosts.d (as processes
// sharing a home), each pinning another key beside the address's pin
// at the same moment, get exactly most keys pinned between them; the
// others are refused with *TooManyKeysError and write nothing. Counted
// by the caller before the write, each found room and all wrote (found
// by review, 2026-12-05). Run it under -race too.
func TestAddKeyAtMostConcurrent(t *testing.T) {
	const (
		addr    = "engine.example:443"
		most    = 5
		writers = 24
	)
	s, opts := load(t, map[string]*jwk.Key{"engine.example_443.json": pinned(t, 1, addr)})
	start := make(chan struct{})
	errs := make(chan error, writers)
	for i := range writers {
		st := s // half share the store, half load their own
		if i%2 == 1 {
			st = Load(opts)
		}
		k := key(t, 100+i)
		go func() {
			<-start
			_, err := st.AddKeyAtMost(addr, k, AddAnother, most)
			errs <- err
		}()
	}
	close(start)
	added := 0
	for range writers {
		var tm *TooManyKeysError
		switch err := <-errs; {
		case err == nil:
			added++
		case errors.As(err, &tm):
			if tm.Most != most || tm.Pinned < most {
				t.Errorf("refused with %+v", tm)
			}
		default:
			t.Error(err)
		}
	}
	if n := Load(opts).KeysPinnedAt(addr); n != most || added != most-1 {
		t.Errorf("%d keys pinned for %s (%d added), want at most %d", n, addr, added, most)
	}
	if ents, _ := keyDirEntries(opts.Dirs[0]); len(ents) != most {
		t.Errorf("trusted_hosts.d holds %d files, want %d", len(ents), most)
	}
	// A key pinned already is no key more: found, not refused.
	if _, err := s.AddKeyAtMost(addr, key(t, 1), AddAnother, most); err != nil {
		t.Errorf("a pinned key at the bound: %v", err)
	}
	if _, err := s.AddKeyAtMost(addr, key(t, 2), AddAnother, 0); err == nil {
		t.Error("a bound of 0 keys was taken")
	}
}
