package authkeys

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// RemoveAll of several members of one JWK Set rewrites the set once, so
// that a watching server reloads it once, where each member's removal
// rewrote it (2,000 members of a set of 20,000 took 217 s); each query
// still gets its own entries, in order, and the rest of the set stays.
func TestRemoveAllRewritesASetOnce(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	d := opts.Dirs[0]
	set := filepath.Join(d, "fleet.json")
	var members []*jwk.Key
	for i := range 6 {
		members = append(members, keydirtest.WithAttrs(key(t, i), "name", "m"+strconv.Itoa(i)))
	}
	keydirtest.Write(t, set, keydirtest.JWK(t, members...))
	s := Load(opts)

	queries := []string{"m4", "m0", key(t, 2).Fingerprint(), "m0"}
	var got []Removal
	placed := keydirtest.TimesPlaced(t, set, func() { got = s.RemoveAll(queries) })
	if placed != 1 {
		t.Errorf("the set was placed %d times, want once for all the queries", placed)
	}

	for i, want := range []string{"m4", "m0", "m2"} {
		if got[i].Err != nil || len(got[i].Removed) != 1 || got[i].Removed[0].Name != want {
			t.Errorf("query %q: removed %v, %v; want the entry %q", queries[i], got[i].Removed, got[i].Err, want)
		}
	}
	if !errors.As(got[3].Err, new(*NotFoundError)) || len(got[3].Removed) != 0 {
		t.Errorf("%q again: removed %v, %v; want *NotFoundError", queries[3], got[3].Removed, got[3].Err)
	}
	var left []string
	for _, e := range Load(opts).Entries() {
		left = append(left, e.Name)
	}
	slices.Sort(left)
	if want := []string{"m1", "m3", "m5"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// A file keytool cannot rewrite (OpenSSH key lines, here the first
// file holding the key) fails the removal with its error, but does not
// stop it: the key's other copies are removed all the same (the safe
// side), and returned with the error.
func TestRemoveGoesPastAFileItCannotRewrite(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	d := opts.Dirs[0]
	k := key(t, 3)
	keydirtest.Write(t, filepath.Join(d, "a-ops.pub"), keydirtest.SSH(t, key(t, 50), k))
	keydirtest.Write(t, filepath.Join(d, "k3.json"), keydirtest.JWK(t, k))
	s := Load(opts)
	removed, err := s.Remove(k.Fingerprint())
	if err == nil || !strings.Contains(err.Error(), "a-ops.pub") {
		t.Fatalf("Remove: %v, want the error of rewriting a-ops.pub", err)
	}
	if len(removed) != 1 || removed[0].File != filepath.Join(d, "k3.json") {
		t.Errorf("removed %v with the error, want k3.json's copy", removed)
	}
	if _, err := os.Lstat(filepath.Join(d, "k3.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("k3.json: %v, want it deleted", err)
	}
}

// sshLine is key n as an OpenSSH authorized_keys line with comment c
// (its entry's name in authorized_keys.json; none if "").
func sshLine(t *testing.T, n int, c string) []byte {
	b := keydirtest.SSH(t, key(t, n))
	if c == "" {
		return b
	}
	return append(b[:len(b)-1], []byte(" "+c+"\n")...)
}

// A key whose last copy, found by the proof, is in a file keytool cannot
// rewrite (OpenSSH lines), removed by two queries of one RemoveAll: the
// second fails with the file's error, as after the first in another
// command, and does not say "not found" of a key still authorized (it
// set the copy aside for the first query, whose write then failed; found
// by review).
func TestRemoveAllSaysWhyAKeyIsLeft(t *testing.T) {
	for _, offLocal := range []bool{false, true} {
		t.Run(fmt.Sprintf("off-local=%v", offLocal), func(t *testing.T) {
			recordStamps(t)
			opts := fillHome(t, 5)
			d := opts.Dirs[0]
			k := key(t, 3)
			keydirtest.Write(t, filepath.Join(d, "a-ops.pub"), sshLine(t, 50, ""))
			_, finish := LoadFor(opts, Lookups{})
			finish()
			keydirtest.WriteInPlace(t, filepath.Join(d, "a-ops.pub"), append(sshLine(t, 50, ""), sshLine(t, 3, "")...))
			if offLocal {
				old := keydir.LocalStamps
				keydir.LocalStamps = func(string) bool { return false }
				t.Cleanup(func() { keydir.LocalStamps = old })
			}
			queries := []string{k.Fingerprint(), k.Fingerprint()}
			s, finish := LoadFor(opts, lookupsOf(queries))
			got := s.RemoveAll(queries)
			finish()
			for i := range got {
				if got[i].Err == nil || !strings.Contains(got[i].Err.Error(), "a-ops.pub") {
					t.Errorf("query %d: %v, want the error of rewriting a-ops.pub, which still authorizes the key", i, got[i].Err)
				}
			}
		})
	}
}

// A name whose entries are an earlier query's key, in a file keytool
// cannot rewrite, and another key: the name's query fails with the
// file's error, as in another command, rather than say the name removed
// while an entry of it is still authorized (found by review).
func TestRemoveAllSaysWhyANameIsLeft(t *testing.T) {
	for _, offLocal := range []bool{false, true} {
		t.Run(fmt.Sprintf("off-local=%v", offLocal), func(t *testing.T) {
			recordStamps(t)
			opts := fillHome(t, 5)
			d := opts.Dirs[0]
			ak := opts.Files[0]
			keydirtest.Write(t, ak, sshLine(t, 50, "other"))
			keydirtest.Write(t, filepath.Join(d, "crew.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 44), "name", "n"), key(t, 45)))
			_, finish := LoadFor(opts, Lookups{})
			finish()
			keydirtest.WriteInPlace(t, ak, append(sshLine(t, 50, "other"), sshLine(t, 3, "n")...))
			if offLocal {
				old := keydir.LocalStamps
				keydir.LocalStamps = func(string) bool { return false }
				t.Cleanup(func() { keydir.LocalStamps = old })
			}
			queries := []string{key(t, 3).Fingerprint(), "n"}
			s, finish := LoadFor(opts, lookupsOf(queries))
			got := s.RemoveAll(queries)
			finish()
			if got[1].Err == nil || !strings.Contains(got[1].Err.Error(), filepath.Base(ak)) {
				t.Errorf("query \"n\": %v, want the error of rewriting %s, which still authorizes an entry n", got[1].Err, filepath.Base(ak))
			}
		})
	}
}

// A file it cannot rewrite in the first step does not end the removal:
// the copies the proof then finds (here one written in place into
// k1.json) go too, and the file's error is its outcome. It ended there,
// leaving that copy, which still let the key in once the admin had
// mended the file the error named (found by review).
func TestRemoveGoesOnToTheCopiesTheProofFinds(t *testing.T) {
	recordStamps(t)
	opts := fillHome(t, 5)
	d := opts.Dirs[0]
	k := key(t, 3)
	keydirtest.Write(t, filepath.Join(d, "a-ops.pub"), append(sshLine(t, 50, ""), sshLine(t, 3, "")...))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	keydirtest.WriteInPlace(t, filepath.Join(d, "k1.json"), keydirtest.JWK(t, key(t, 1), k))
	s, finish := LoadFor(opts, lookupsOf([]string{k.Fingerprint()}))
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if err == nil || !strings.Contains(err.Error(), "a-ops.pub") {
		t.Fatalf("Remove: %v, want the error of rewriting a-ops.pub", err)
	}
	var files []string
	for _, e := range removed {
		files = append(files, filepath.Base(e.File))
	}
	if !slices.Contains(files, "k1.json") {
		t.Errorf("removed from %v with the error, want k1.json's copy among them", files)
	}
	for _, c := range authorizedState(opts) { // every copy: Entries lists a key's first
		if strings.Contains(c, k.Fingerprint()) && !strings.HasPrefix(c, "a-ops.pub ") {
			t.Errorf("%s: still authorizes the key", c)
		}
	}
}

// A file the first step could not rewrite (OpenSSH lines of two keys)
// that the admin mends before the proof (the other key's line gone) is
// rewritten by the second: the removal then succeeds, with no error of a
// file it did rewrite in the end, where it said the first attempt's.
func TestRemoveSaysNothingOfAFileItRewroteInTheEnd(t *testing.T) {
	recordStamps(t)
	opts := fillHome(t, 5)
	d := opts.Dirs[0]
	k := key(t, 3)
	ops := filepath.Join(d, "a-ops.pub")
	keydirtest.Write(t, ops, append(sshLine(t, 50, ""), sshLine(t, 3, "")...))
	_, finish := LoadFor(opts, Lookups{})
	finish()
	mended := false
	removeBeforeProof = func() {
		if _, err := os.Lstat(filepath.Join(d, "k3.json")); err == nil {
			t.Error("k3.json is there before the proof: the first step did not run")
		}
		keydirtest.WriteInPlace(t, ops, sshLine(t, 3, ""))
		mended = true
	}
	t.Cleanup(func() { removeBeforeProof = nil })
	s, finish := LoadFor(opts, lookupsOf([]string{k.Fingerprint()}))
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if !mended {
		t.Fatal("no proof ran")
	}
	if err != nil {
		t.Errorf("Remove: %v, want no error: a-ops.pub was rewritten after the admin mended it", err)
	}
	var files []string
	for _, e := range removed {
		files = append(files, filepath.Base(e.File))
	}
	if !slices.Equal(files, []string{"k3.json", "a-ops.pub"}) {
		t.Errorf("removed from %v, want k3.json then a-ops.pub", files)
	}
	if _, err := Load(opts).LookupKey(k, netip.Addr{}); err == nil {
		t.Error("the key is still authorized after the removal")
	}
}

// UnrevokeAll of several keys of one list of revoked keys rewrites it
// once, where Unrevoke after Unrevoke rewrote it for each (200 keys of a
// list of 20,000: 44 s); each fingerprint lifts its own key, a second
// time finds none, and a key revoked in a second file too is lifted from
// both.
func TestUnrevokeAllRewritesAListOnce(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	list := opts.RevokedFiles[0]
	keydirtest.Write(t, list, keydirtest.JWK(t, key(t, 1), key(t, 2), key(t, 3), key(t, 4)))
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "again.json"), keydirtest.JWK(t, key(t, 3)))
	s := Load(opts)
	fps := []string{key(t, 2).Fingerprint(), key(t, 1).KeyID(), key(t, 2).Fingerprint(), key(t, 3).Fingerprint()}
	var got []Removal
	if placed := keydirtest.TimesPlaced(t, list, func() { got = s.UnrevokeAll(fps) }); placed != 1 {
		t.Errorf("the list was placed %d times, want once for all the keys", placed)
	}
	for i, k := range []int{2, 1} {
		if got[i].Err != nil || len(got[i].Removed) != 1 || got[i].Removed[0].SPKIHash != key(t, k).SPKIHash() {
			t.Errorf("%s: lifted %v, %v; want key %d's revocation", fps[i], got[i].Removed, got[i].Err, k)
		}
	}
	if !errors.As(got[2].Err, new(*NotFoundError)) || len(got[2].Removed) != 0 {
		t.Errorf("%s again: lifted %v, %v; want *NotFoundError", fps[2], got[2].Removed, got[2].Err)
	}
	if got[3].Err != nil || len(got[3].Removed) != 2 {
		t.Errorf("key 3: lifted %v, %v; want both its revocations lifted", got[3].Removed, got[3].Err)
	}
	var left []string
	for _, e := range Load(opts).Revoked() {
		left = append(left, e.Fingerprint)
	}
	if want := []string{key(t, 4).Fingerprint()}; !slices.Equal(left, want) {
		t.Errorf("still revoked %v, want key 4 alone", left)
	}
}

// A revocation whose copies are in a file keytool cannot rewrite (OpenSSH
// lines) and in another, lifted twice in one UnrevokeAll (by fingerprint,
// key ID or thumbprint): the second fails with the file's error, as in
// another Unrevoke, and does not say "not found" of a revocation still
// there (it set the copy aside for the first, whose write then failed;
// found by review).
func TestUnrevokeAllSaysWhyARevocationIsLeft(t *testing.T) {
	k := key(t, 1)
	for _, again := range []string{k.Fingerprint(), k.KeyID(), k.Thumbprint()} {
		opts := HomeOptions(t.TempDir())
		keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "ops.pub"), append(sshLine(t, 50, ""), sshLine(t, 1, "")...))
		keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "k1.json"), keydirtest.JWK(t, k))
		got := Load(opts).UnrevokeAll([]string{k.Fingerprint(), again})
		for i, r := range got {
			if r.Err == nil || !strings.Contains(r.Err.Error(), "ops.pub") {
				t.Errorf("%s then %s: query %d: %v, want the error of rewriting ops.pub, which still revokes the key", k.Fingerprint(), again, i, r.Err)
			}
		}
		if len(got[0].Removed) != 1 || filepath.Base(got[0].Removed[0].File) != "k1.json" {
			t.Errorf("the first lifted %v, want k1.json's revocation", got[0].Removed)
		}
	}
}

// Where the file the first step could not rewrite no longer holds the
// key by the end (the admin took the key out of it between the steps),
// no query names it: the removal went through, as commands one after the
// other say (found by review).
func TestRemoveAllSaysNothingOfAFileThatNoLongerHoldsTheKey(t *testing.T) {
	recordStamps(t)
	k := key(t, 3)
	for _, queries := range [][]string{{k.Fingerprint()}, {k.Fingerprint(), k.KeyID()}} {
		opts := fillHome(t, 5)
		ops := filepath.Join(opts.Dirs[0], "a-ops.pub")
		keydirtest.Write(t, ops, append(sshLine(t, 50, ""), sshLine(t, 3, "")...))
		_, finish := LoadFor(opts, Lookups{})
		finish()
		removeBeforeProof = func() { keydirtest.WriteInPlace(t, ops, sshLine(t, 50, "")) }
		t.Cleanup(func() { removeBeforeProof = nil })
		s, finish := LoadFor(opts, lookupsOf(queries))
		got := s.RemoveAll(queries)
		finish()
		if got[0].Err != nil {
			t.Errorf("%d queries: the first: %v, want nil: a-ops.pub no longer holds the key", len(queries), got[0].Err)
		}
		if len(queries) > 1 && !errors.As(got[1].Err, new(*NotFoundError)) {
			t.Errorf("the second query: %v, want not found, as after the first in another command", got[1].Err)
		}
		if _, err := Load(opts).LookupKey(k, netip.Addr{}); err == nil {
			t.Error("the key is still authorized")
		}
	}
}
