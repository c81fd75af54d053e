package keydir

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// findAlone is the reference a Finder is tested against: the matcher as
// it was before the Finder (session 54's Loader.FindAgain), one
// fingerprint at a time — every entry walked, then, where none matched,
// every file read again — each file kept once read as loaded (reads).
func (l *Loader[T]) findAlone(snap *Snapshot[T], fp jwk.Fingerprint, spki func(*T) [32]byte, keep func(src int) bool, reads map[fileVersion]reread) ([]Found[T], error) {
	var out []Found[T]
	sum, full := fp.SPKIHash()
	for f := range snap.All {
		if !keep(f.Source()) {
			continue
		}
		items := f.Items()
		for i := range items {
			it := &items[i]
			h := spki(it)
			if full && h == sum || !full && strings.EqualFold(jwk.FormatKeyID(h), fp.String()) {
				out = append(out, Found[T]{f, it})
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	var refused error
	for num, loaded := range snap.allSummed {
		f := snap.FileAt(num)
		if !keep(f.Source()) || l.isFeed(f.Source()) {
			continue
		}
		v := fileVersion{num, snap.GenAt(num)}
		again, ok := reads[v]
		if !ok {
			if again = l.readAgain(f.Path()); again.ok && again.sum == loaded {
				reads[v] = again
			}
		}
		if again.err != nil {
			if refused == nil {
				refused = again.err
			}
			continue
		}
		matched := map[[32]byte]bool{}
		for i, s := range again.sums {
			if fp.MatchSums(s) {
				matched[again.spki[i]] = true
			}
		}
		items := f.Items()
		for i := range items {
			if it := &items[i]; matched[spki(it)] {
				out = append(out, Found[T]{f, it})
			}
		}
	}
	return out, refused
}

// A Finder is findAlone of each fingerprint, call by call, through
// files made writable by others and back, rewritten in place, removed and
// written again, replaced by a link to nothing, with reloads between the
// calls or none (a snapshot kept while the files change under it), and
// snapshots gone back to; every form of fingerprint, key IDs in lower
// case, fingerprints given twice and ones the Finder was not made with;
// a feed among the sources, and keep leaving out each other source; and
// what it returned stays as it was (from two reviews).
func TestFinderIsFindAloneAsFilesChange(t *testing.T) {
	spki := spkiOf
	pool := keyPool(t, 12)
	var refusals, unsure, found int
	for round := range 60 {
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		home := t.TempDir()
		dirs := []string{filepath.Join(home, "a.d"), filepath.Join(home, "b.d")}
		some := func() []*jwk.Key {
			ks := make([]*jwk.Key, rng.IntN(3))
			for i := range ks {
				ks[i] = pool[rng.IntN(len(pool)-2)]
			}
			return ks
		}
		var files []string
		for i := range 6 {
			f := filepath.Join(dirs[i%2], fmt.Sprintf("f%d.jwk", i))
			keydirtest.Write(t, f, keydirtest.JWK(t, append(some(), pool[rng.IntN(len(pool)-2)])...))
			files = append(files, f)
		}
		feed := newMemFeed("feed:x")
		feed.Set(FeedView{Entries: map[string][]byte{"e1.jwk": keydirtest.JWK(t, pool[rng.IntN(len(pool)-2)]), "e2.jwk": keydirtest.JWK(t, pool[rng.IntN(len(pool)-2)])}})
		l := newSPKILoader(home, Source{Path: dirs[0], Dir: true}, Source{Path: feed.Name(), Dir: true, Feed: feed}, Source{Path: dirs[1], Dir: true})
		snap := l.Reload()
		keep := func(src int) bool { return round%3 == 0 || src != round%3*2-2 } // all, all but a.d, all but b.d
		var all, fps []jwk.Fingerprint
		for _, k := range pool {
			for _, s := range fingerprintForms(k) {
				if fp, err := jwk.ParseFingerprint(s); err == nil {
					all = append(all, fp)
				}
			}
		}
		for _, fp := range all {
			if rng.IntN(4) > 0 {
				fps = append(fps, fp)
				if rng.IntN(5) == 0 {
					fps = append(fps, fp)
				}
			}
		}
		rng.Shuffle(len(fps), func(i, j int) { fps[i], fps[j] = fps[j], fps[i] })
		finder, reads := l.NewFinder(fps, spki, keep), map[fileVersion]reread{}
		snaps := []*Snapshot[[32]byte]{snap}
		type returned struct {
			found []Found[[32]byte]
			was   []Found[[32]byte]
			items [][32]byte
		}
		var held []returned
		for step := range 50 {
			f := files[rng.IntN(len(files))]
			fi, statErr := os.Lstat(f)
			regular := statErr == nil && fi.Mode().IsRegular()
			switch rng.IntN(10) {
			case 0, 9:
				if regular {
					if err := os.Chmod(f, []os.FileMode{0o644, 0o666}[rng.IntN(2)]); err != nil {
						t.Fatal(err)
					}
				}
			case 1:
				if regular {
					keydirtest.WriteInPlace(t, f, keydirtest.JWK(t, some()...))
				}
			case 2:
				if err := os.Remove(f); err != nil && statErr == nil {
					t.Fatal(err)
				}
				if rng.IntN(2) == 0 {
					keydirtest.Write(t, f, keydirtest.JWK(t, append(some(), pool[0])...))
				}
			case 3:
				snap = l.Reload()
				snaps = append(snaps, snap)
			case 4:
				snap = snaps[rng.IntN(len(snaps))]
			case 5:
				if err := os.Remove(f); err != nil && statErr == nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(home, "nowhere"), f); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				fp := all[rng.IntN(len(all))]
				got, err := finder.Find(snap, fp)
				want, wantErr := l.findAlone(snap, fp, spki, keep, reads)
				if fmt.Sprint(err) != fmt.Sprint(wantErr) || !slices.EqualFunc(got, want, func(a, b Found[[32]byte]) bool {
					return a.File.Path() == b.File.Path() && *a.Item == *b.Item
				}) {
					t.Fatalf("round %d step %d, %s: the Finder found %d, %v; findAlone %d, %v", round, step, fp, len(got), err, len(want), wantErr)
				}
				r := returned{found: got, was: slices.Clone(got)}
				for _, g := range got {
					r.items = append(r.items, *g.Item)
				}
				held = append(held, r)
				if err != nil {
					refusals++
				}
				if len(got) > 0 {
					found++
				}
			}
			if finder.snap == snap && len(finder.unsure) > 0 {
				unsure++
			}
		}
		for n, r := range held {
			if !slices.Equal(r.found, r.was) || !slices.EqualFunc(r.found, r.items, func(f Found[[32]byte], item [32]byte) bool { return *f.Item == item }) {
				t.Fatalf("round %d: what call %d returned changed after it was returned", round, n)
			}
		}
	}
	if refusals == 0 || unsure == 0 || found == 0 {
		t.Fatalf("%d refusals, %d steps with unsure files, %d finds: the test tests less than it says", refusals, unsure, found)
	}
}

// A Finder may be asked by several goroutines at once, on several
// snapshots (from review; run with -race).
func TestFinderConcurrent(t *testing.T) {
	spki := spkiOf
	home := t.TempDir()
	dir := filepath.Join(home, "a.d")
	var fps []jwk.Fingerprint
	for i := range 8 {
		k := key(t, i)
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("f%d.jwk", i)), keydirtest.JWK(t, k))
		a, _ := jwk.ParseFingerprint(k.Thumbprint())
		b, _ := jwk.ParseFingerprint(k.Fingerprint())
		fps = append(fps, a, b)
	}
	l := newSPKILoader(home, Source{Path: dir, Dir: true})
	s1 := l.Reload()
	keydirtest.Write(t, filepath.Join(dir, "x.jwk"), keydirtest.JWK(t, key(t, 9)))
	s2 := l.Reload()
	finder := l.NewFinder(fps[:12], spki, func(int) bool { return true }) // the last four found alone
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				snap := s1
				if (g+n)%3 == 0 {
					snap = s2
				}
				fp := fps[(g*7+n)%len(fps)]
				if found, err := finder.Find(snap, fp); err != nil || len(found) != 1 {
					t.Errorf("%s: %d found, %v; want 1", fp, len(found), err)
					return
				}
			}
		})
	}
	wg.Wait()
}
