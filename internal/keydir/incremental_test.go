package keydir

// Randomized differential tests of the incremental loader: after every
// step of random changes (files written, rewritten in place, chmod-ed,
// removed, linked; feed entries put, rejected, deleted), the snapshot an
// incremental reload made — full, narrowed to paths, a rescan's compare,
// a feed's changed entries — must equal a cold load's, and the loader's
// rows their invariants (sorted, none pending, each stamp the file's).
// Written by a review of the loader's rows (2026-12-01).

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
)

func checkRows[T any](t *testing.T, l *Loader[T], held ...string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.states {
		ss := &l.states[i]
		count, last := 0, ""
		for _, ch := range ss.files.chunks {
			if ch.len() == 0 {
				t.Fatalf("source %d: an empty chunk", i)
			}
			if ch.h != nil && (len(ch.hs()) != ch.len() || ch.compact().h == nil) {
				t.Fatalf("source %d: a chunk of %d rows keeps %d pointers, all nil: %v (chunked.compact)", i, ch.len(), len(ch.hs()), ch.compact().h == nil)
			}
			for k := range ch.len() {
				r := &fileRow[T]{ch.head(k), ch.data(k)}
				count++
				if r.pending() != nil {
					t.Fatalf("source %d: row %s still pending after the reload", i, r.path(&l.numbers))
				}
				name := r.name(&l.numbers, ss.nameAt)
				if count > 1 && name <= last {
					t.Fatalf("source %d: rows out of order: %q after %q", i, name, last)
				}
				last = name
				if r.num == 0 && r.problem() == nil {
					t.Errorf("source %d: row %s has neither file nor problem", i, r.path(&l.numbers))
				}
				if l.cfg.Sources[i].Feed == nil && r.num != 0 && r.problem() == nil && !slices.Contains(held, r.path(&l.numbers)) {
					fi, err := os.Stat(r.path(&l.numbers))
					if err != nil {
						t.Fatalf("row %s: %v", r.path(&l.numbers), err)
					}
					if got, want := ss.stamp(r), trustfile.StampOf(fi); got != want {
						t.Fatalf("row %s: stamp %v, on disk %v", r.path(&l.numbers), got, want)
					}
				}
			}
		}
		if count != ss.files.n {
			t.Fatalf("source %d: %d rows, n=%d", i, count, ss.files.n)
		}
	}
}

func snapshotView[T any](s *Snapshot[T]) string {
	var b strings.Builder
	for _, f := range s.Files() {
		fmt.Fprintf(&b, "F %s %d %v\n", f.Path(), f.Source(), f.Items())
	}
	var ps []string
	for _, p := range s.Problems {
		ps = append(ps, p.Error()+fmt.Sprintf(" rev=%v entry=%v", p.Revocation, p.Entry))
	}
	slices.Sort(ps)
	for _, p := range ps {
		fmt.Fprintf(&b, "P %s\n", p)
	}
	fmt.Fprintf(&b, "R %v\n", s.RevocationErr != nil)
	return b.String()
}

// TestIncrementalMatchesColdLoad runs with entries of two kinds: strings,
// which hold a pointer, so that every file keeps its File; and SPKI
// hashes, which hold none, so that a file of one key of the directory
// keeps its item in the numbers' mapped part and has no File of its own
// (docs/design.md, "Memory of a loaded store", step 5): its number,
// generation and reads are then followed through every kind of reload,
// number given again and snapshot kept (followNumbers, checkNumbered).
func TestIncrementalMatchesColdLoad(t *testing.T) {
	steps, seeds := 20, []int64{1, 2}
	if testing.Short() {
		steps, seeds = 8, seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { incrementalMatchesColdLoad(t, seed, steps, newLoader) })
		t.Run(fmt.Sprint(seed, "/lean"), func(t *testing.T) { incrementalMatchesColdLoad(t, seed, steps, newLeanLoader) })
	}
}

func incrementalMatchesColdLoad[T any](t *testing.T, seed int64, steps int, newLoader func(...Source) *Loader[T]) {
	rnd := rand.New(rand.NewSource(seed))
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "keys"), filepath.Join(root, "revoked")}
	const n = chunkLen + chunkLen/2 // more than a chunk: edits on both sides of its edge
	nextKey := 1
	names := func(d int) int {
		if d == 0 {
			return n
		}
		return 40
	}
	for d, dir := range dirs {
		for j := 0; j < names(d); j++ {
			keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%04d.json", j)), keydirtest.JWK(t, key(t, nextKey)))
			nextKey++
		}
	}
	srcs := []Source{{Path: dirs[0], Dir: true}, {Path: dirs[1], Dir: true, Revocation: true}}
	l := newLoader(srcs...)
	followNumbers(t, l)
	l.Reload()
	for step := 0; step < steps; step++ {
		var changed []string
		nch := 1 + rnd.Intn(8)
		if rnd.Intn(6) == 0 {
			nch = 100 + rnd.Intn(300)
		}
		for c := 0; c < nch; c++ {
			d := 0
			if rnd.Intn(5) == 0 {
				d = 1
			}
			path := filepath.Join(dirs[d], fmt.Sprintf("k%04d.json", rnd.Intn(names(d)+5)))
			changed = append(changed, path)
			// Make it a regular file again first when it is not one.
			if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
				must(t, os.RemoveAll(path))
			}
			_, statErr := os.Stat(path)
			exists := statErr == nil
			switch op := rnd.Intn(12); {
			case op == 0 || !exists:
				keydirtest.Replace(t, path, keydirtest.JWK(t, key(t, nextKey)))
				nextKey++
			case op == 1: // same size, same mtime: only the ctime tells
				fi, err := os.Stat(path)
				must(t, err)
				old, err := os.ReadFile(path)
				must(t, err)
				var data []byte
				for tries := 0; tries < 200; tries++ {
					data = keydirtest.JWK(t, key(t, nextKey))
					nextKey++
					if len(data) == int(fi.Size()) && !bytes.Equal(data, old) {
						break
					}
					data = nil
				}
				if data == nil {
					continue
				}
				keydirtest.WriteInPlace(t, path, data)
				must(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
			case op == 2:
				must(t, os.Remove(path))
			case op == 3:
				keydirtest.WriteInPlace(t, path, []byte("not a key"))
			case op == 4:
				must(t, os.Chmod(path, 0o666))
			case op == 5:
				must(t, os.Chmod(path, 0o600))
			case op == 6:
				must(t, os.Chown(path, 4242, 0))
			case op == 7:
				must(t, os.Chown(path, 0, 0))
			case op == 8:
				must(t, os.Remove(path))
				must(t, os.Symlink(filepath.Join(dirs[d], "nothing-here"), path))
			case op == 9:
				must(t, os.Remove(path))
				must(t, os.Mkdir(path, 0o755))
			case op == 10:
				data := keydirtest.JWK(t, key(t, nextKey), key(t, nextKey+1))
				nextKey += 2
				data = bytes.Replace(data, []byte(`"kty":"OKP"`), []byte(`"kty":"BAD"`), 1)
				keydirtest.Replace(t, path, data)
			case op == 11:
				// Back to an older content (the sum spares the parse).
				keydirtest.Replace(t, path, keydirtest.JWK(t, key(t, rnd.Intn(nextKey))))
			}
		}
		var how string
		switch rnd.Intn(4) {
		case 0:
			how = "Reload()"
			l.Reload()
		case 1:
			how = "Reload(paths)"
			l.Reload(changed...)
		case 2:
			how = "rescan"
			l.applyRescan(l.compare().h)
		case 3:
			how = "Reload(some paths)+rescan"
			l.Reload(changed[:len(changed)/2]...)
			l.applyRescan(l.compare().h)
		}
		checkRows(t, l)
		checkNumbered(t, l)
		got := snapshotView(l.Snapshot())
		cold := newLoader(srcs...)
		wantV := snapshotView(cold.Reload())
		if got != wantV {
			t.Fatalf("step %d (%s, %d changes): incremental snapshot differs from a cold load\n%s", step, how, len(changed), diffLines(got, wantV))
		}
	}
}

func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, x := range al {
		if !slices.Contains(bl, x) {
			out = append(out, "- got only:  "+x)
		}
	}
	for _, x := range bl {
		if !slices.Contains(al, x) {
			out = append(out, "+ cold only: "+x)
		}
	}
	return strings.Join(out, "\n")
}

func TestFeedIncrementalMatchesColdLoad(t *testing.T) {
	for _, rev := range []bool{false, true} {
		t.Run(fmt.Sprint(rev), func(t *testing.T) { feedIncrementalMatchesColdLoad(t, rev, newLoader) })
		t.Run(fmt.Sprint(rev, "/lean"), func(t *testing.T) { feedIncrementalMatchesColdLoad(t, rev, newLeanLoader) })
	}
}

func feedIncrementalMatchesColdLoad[T any](t *testing.T, rev bool, newLoader func(...Source) *Loader[T]) {
	rnd := rand.New(rand.NewSource(7))
	f := newMemFeed("etcd:/fleet/keys")
	set := NewFeedSet()
	const n = 1300
	for j := 0; j < n; j++ {
		set = set.Put(fmt.Sprintf("e%04d", j), keydirtest.JWK(t, key(t, j)))
	}
	f.Set(FeedView{Set: set})
	src := Source{Path: f.Name(), Dir: true, Feed: f, Revocation: rev}
	l := newLoader(src)
	followNumbers(t, l)
	l.Reload()
	steps := 80
	if testing.Short() {
		steps = 20
	}
	for step := range steps {
		nch := 1 + rnd.Intn(10)
		if rnd.Intn(8) == 0 {
			nch = 200
		}
		for c := 0; c < nch; c++ {
			name := fmt.Sprintf("e%04d", rnd.Intn(n+20))
			switch rnd.Intn(6) {
			case 0, 1:
				set = set.Put(name, keydirtest.JWK(t, key(t, rnd.Intn(3*n))))
			case 2:
				set = set.Reject(name, errors.New("over the bound"))
			case 3:
				set = set.Delete(name)
			case 4:
				set = set.Put(name, []byte("garbage"))
			case 5:
				set = set.Put(name, keydirtest.JWK(t, key(t, 1)))
				set = set.Put(name, keydirtest.JWK(t, key(t, 2)))
			}
		}
		v := FeedView{Set: set}
		switch rnd.Intn(10) {
		case 0:
			f.Set(FeedView{Err: errors.New("stale")})
			l.Reload()
		case 1:
			f.Set(FeedView{Set: set})
			l.Reload()
			v = FeedView{Entries: map[string][]byte{}}
			for name, e := range set.All() {
				if e.Err == nil {
					v.Entries[name] = e.Data
				}
			}
		}
		f.Set(v)
		l.Reload()
		checkRows(t, l)
		checkNumbered(t, l)
		cold := newLoader(src)
		got, want := snapshotView(l.Snapshot()), snapshotView(cold.Reload())
		if got != want {
			t.Fatalf("step %d:\n%s", step, diffLines(got, want))
		}
	}
}

// TestNarrowedNamesOfTheDirectoryOnly: a reload narrowed to names that
// are not the directory's own entries — what a damaged admin index could
// give: "./a.json", "a.json/", "../a.json" — examines none of them. Before,
// "../a.json" loaded a key from outside the directory, and the others
// left a pending row in the published list, which a later reload wrote in
// place in a chunk an earlier version shared (found by review).
func TestNarrowedNamesOfTheDirectoryOnly(t *testing.T) {
	for _, name := range []string{"./a.json", "../a.json", "a.json/", "sub/a.json"} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "keys")
			keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
			keydirtest.Write(t, filepath.Join(root, "a.json"), keydirtest.JWK(t, key(t, 2)))       // outside
			keydirtest.Write(t, filepath.Join(dir, "sub", "a.json"), keydirtest.JWK(t, key(t, 3))) // in a subdirectory
			for j := range 600 {                                                                   // two chunks
				keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%04d.json", j)), keydirtest.JWK(t, key(t, 10+j)))
			}
			l := newLoader(Source{Path: dir, Dir: true})
			l.Reload()
			l.mu.Lock()
			l.narrow = map[int][]string{0: {name}}
			l.mu.Unlock()
			s := l.Reload()
			l.mu.Lock()
			l.narrow = nil
			l.mu.Unlock()
			checkRows(t, l)
			for _, f := range s.Files() {
				if filepath.Dir(f.Path()) != dir {
					t.Errorf("a narrowed reload of %q loaded %s, not an entry of %s", name, f.Path(), dir)
				}
			}
		})
	}
}
