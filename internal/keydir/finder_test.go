package keydir

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A Finder's Find of each of its fingerprints finds what the test knows
// each file holds, and is Loader.Find of it alone, on the same snapshot
// at the same moment — the same copies in the same order, the same
// refusal — whatever the fingerprints' forms (SPKI hash,
// key ID, thumbprint, ssh-keygen's), however many name one key, whether
// their keys are held in several files, in a source keep leaves out, in
// a file made writable by others since the load (refused), gone, or
// rewritten in place with other keys (read as it is), and whether it is
// asked twice or about a fingerprint it was not made with.
func TestFinderIsFindOfEach(t *testing.T) {
	spki := spkiOf
	pool := keyPool(t, 16)
	for round := range 40 {
		rng := rand.New(rand.NewPCG(uint64(round), 1))
		home := t.TempDir()
		dirs := []string{filepath.Join(home, "a.d"), filepath.Join(home, "b.d")}
		some := func() []*jwk.Key {
			ks := make([]*jwk.Key, 1+rng.IntN(3))
			for i := range ks {
				ks[i] = pool[rng.IntN(len(pool)-4)] // the last four in no file
			}
			return ks
		}
		var files []string
		loaded, now := map[string][]*jwk.Key{}, map[string][]*jwk.Key{} // what the load read, what a read finds now
		for i := range 12 {
			f := filepath.Join(dirs[i%2], fmt.Sprintf("f%d.jwk", i))
			ks := some()
			keydirtest.Write(t, f, keydirtest.JWK(t, ks...))
			files, loaded[f], now[f] = append(files, f), ks, ks
		}
		l := newSPKILoader(home, Source{Path: dirs[0], Dir: true}, Source{Path: dirs[1], Dir: true})
		snap := l.Reload()
		if len(snap.Problems) != 0 {
			t.Fatalf("load: %v", snap.Problems)
		}
		keep := func(src int) bool { return src == 0 || round%3 == 0 }
		var fps []jwk.Fingerprint
		for _, k := range pool {
			for _, s := range fingerprintForms(k) {
				if fp, err := jwk.ParseFingerprint(s); err == nil && rng.IntN(3) > 0 {
					fps = append(fps, fp)
				}
			}
		}
		rng.Shuffle(len(fps), func(i, j int) { fps[i], fps[j] = fps[j], fps[i] })
		asked := slices.Clone(fps)
		fps = fps[:len(fps)-2] // two it was not made with
		finder := l.NewFinder(fps, spki, keep)
		refused := map[string]bool{}
		switch f := files[2*rng.IntN(len(files)/2)]; round % 4 { // a file of a.d, which keep takes
		case 1:
			for _, f := range []string{f, files[2*rng.IntN(len(files)/2)]} { // the first refusal is returned
				if err := os.Chmod(f, 0o666); err != nil {
					t.Fatal(err)
				}
				refused[f] = true
			}
		case 2:
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			now[f] = nil
		case 3:
			now[f] = append(some(), loaded[f][0]) // unsure, and still holding a key the load took from it
			keydirtest.WriteInPlace(t, f, keydirtest.JWK(t, now[f]...))
		}
		// What Find is to return, from what the test wrote: the copies
		// whose SPKI hash fp shows (in full, or a key ID), else the copies
		// of the keys it names in the files as they are now.
		expect := func(fp jwk.Fingerprint) (out [][2]string, err string) {
			for _, byHash := range []bool{true, false} {
				for _, f := range snap.Files() {
					if !keep(f.Source()) || !byHash && refused[f.Path()] {
						if err == "" && !byHash && keep(f.Source()) {
							err = f.Path()
						}
						continue
					}
					for _, k := range loaded[f.Path()] {
						h := k.SPKIHash()
						sum, full := fp.SPKIHash()
						if byHash && (full && sum == h || strings.EqualFold(jwk.FormatKeyID(h), fp.String())) ||
							!byHash && slices.ContainsFunc(now[f.Path()], func(n *jwk.Key) bool { return n.SPKIHash() == h && fp.Match(n) }) {
							out = append(out, [2]string{f.Path(), k.Fingerprint()})
						}
					}
				}
				if byHash && len(out) > 0 {
					return out, ""
				}
			}
			return out, err // with what the other files hold
		}
		var viaFile, viaHash, refusals int
		for _, fp := range append(asked, asked...) {
			want, wantErr := l.Find(snap, fp, spki, keep)
			got, err := finder.Find(snap, fp)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("round %d, %s: Finder's error %v, Loader.Find's %v", round, fp, err, wantErr)
			}
			if !slices.EqualFunc(got, want, func(a, b Found[[32]byte]) bool { return a.File.Path() == b.File.Path() && *a.Item == *b.Item }) {
				t.Fatalf("round %d, %s: Finder found %d copies, Loader.Find %d (or others, or in another order)", round, fp, len(got), len(want))
			}
			var copies [][2]string
			for _, c := range got {
				copies = append(copies, [2]string{c.File.Path(), jwk.FormatFingerprint(*c.Item)})
			}
			wantCopies, wantRefused := expect(fp)
			if !slices.Equal(copies, wantCopies) || (err != nil) != (wantRefused != "") || err != nil && !strings.Contains(err.Error(), wantRefused+" ") {
				t.Fatalf("round %d, %s: found %v, %v; want %v, refused %v", round, fp, copies, err, wantCopies, wantRefused)
			}
			if _, full := fp.SPKIHash(); len(got) > 0 && (full || strings.Count(fp.String(), ":") == 11) {
				viaHash++
			} else if len(got) > 0 {
				viaFile++
			}
			if err != nil {
				refusals++
			}
		}
		if viaFile == 0 || viaHash == 0 || round%4 == 1 && refusals == 0 {
			t.Fatalf("round %d: %d found by hash, %d by the files read again, %d refusals: the round tests less than it says", round, viaHash, viaFile, refusals)
		}
	}
}

// keyPool returns n keys (key).
func keyPool(t *testing.T, n int) []*jwk.Key {
	pool := make([]*jwk.Key, n)
	for i := range pool {
		pool[i] = key(t, i)
	}
	return pool
}

// fingerprintForms returns the forms a fingerprint of k may take: its
// SPKI hash as keytool prints it, its key ID in upper and lower case, its
// thumbprint, and ssh-keygen's fingerprint of it.
func fingerprintForms(k *jwk.Key) []string {
	ssh, _ := k.SSHFingerprint()
	return []string{k.Fingerprint(), k.KeyID(), strings.ToLower(k.KeyID()), k.Thumbprint(), ssh}
}
