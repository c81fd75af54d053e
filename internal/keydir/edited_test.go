//go:build unix

package keydir

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestEditedSnapshotRandomSources drives a narrowed directory, a single
// trust file, a single revocation file, a single symlinked file and two
// feeds of one group through random changes (new, removed, corrupt, too
// permissive, fixed; links retargeted or dangling; the directory's mode
// changed, the directory renamed away and back), reloading by paths,
// whole, holding (early and not), with and without l.only; after each
// reload the published snapshot — assembled from the reload's edits
// where it can be (editedSnapshot) — must be what a whole assembly
// gives, and the numbers, the problems logged and the key count must
// agree with it. It fails if editedSnapshot ignores a problem, if
// examineFile records no edit, or if scanNames lets a problem's coming
// or going go by as an edit (review of 84fdfdb, which wrote it).
func TestEditedSnapshotRandomSources(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	single := filepath.Join(home, "authorized_keys")
	revoked := filepath.Join(home, "revoked_keys")
	link := filepath.Join(home, "linked_keys")
	targets := filepath.Join(home, "targets")
	name := func(i int) string { return fmt.Sprintf("k%04d.json", i) }
	var narrowNames []string
	for i := 0; i < 600; i++ {
		keydirtest.Write(t, filepath.Join(dir, name(i)), keydirtest.JWK(t, key(t, i)))
		if i%3 != 0 {
			narrowNames = append(narrowNames, name(i))
		}
	}
	keydirtest.Write(t, single, keydirtest.JWK(t, key(t, 5000)))
	keydirtest.Write(t, revoked, keydirtest.JWK(t, key(t, 6000)))
	keydirtest.Write(t, filepath.Join(targets, "a"), keydirtest.JWK(t, key(t, 7000)))
	keydirtest.Write(t, filepath.Join(targets, "b"), keydirtest.JWK(t, key(t, 7001)))
	must(t, os.Symlink(filepath.Join(targets, "a"), link))
	fa, fb := newMemFeed("etcd:/a"), newMemFeed("etcd:/b")
	type group struct{}
	setA, setB := NewFeedSet(), NewFeedSet()
	for i := range 40 {
		setA = setA.Put(fmt.Sprintf("e%02d", i), keydirtest.JWK(t, key(t, 20_000+i)))
		setB = setB.Put(fmt.Sprintf("e%02d", i), keydirtest.JWK(t, key(t, 21_000+i)))
	}
	state := 0
	fa.Set(FeedView{Set: setA, Group: group{}, State: state})
	fb.Set(FeedView{Set: setB, Group: group{}, State: state})
	srcs := []Source{{Path: dir, Dir: true}, {Path: single}, {Path: revoked, Revocation: true}, {Path: link},
		{Path: fa.Name(), Dir: true, Feed: fa}, {Path: fb.Name(), Dir: true, Feed: fb, Revocation: true}}
	l := New(Config[string]{Sources: srcs, Convert: fpConvert, Home: home})
	l.narrow = map[int][]string{0: slices.Clone(narrowNames)}
	l.Reload()
	seed := uint64(84) // KEYDIR_EDITED_SEED=N tries another
	if s := os.Getenv("KEYDIR_EDITED_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 84))
	singles := []string{single, revoked}
	edited := 0
	for step := range 400 {
		prev := l.Snapshot()
		prevFiles := slices.Clone(prev.Files())
		var paths []string
		for range 1 + rng.IntN(3) {
			switch c := rng.IntN(12); {
			case c == 10: // the directory's own mode
				paths = append(paths, dir)
				if rng.IntN(2) == 0 {
					os.Chmod(dir, 0o777)
				} else {
					os.Chmod(dir, 0o755)
				}
			case c == 11: // the directory goes or comes back
				paths = append(paths, dir)
				if _, err := os.Stat(dir); err == nil {
					must(t, os.Rename(dir, dir+".away"))
				} else {
					must(t, os.Rename(dir+".away", dir))
				}
			case c < 4: // a directory file
				p := filepath.Join(dir, name(rng.IntN(650)))
				paths = append(paths, p)
				if _, err := os.Stat(dir); err == nil {
					mutateFile(t, rng, p)
				}
			case c < 8:
				p := singles[rng.IntN(2)]
				paths = append(paths, p)
				mutateFile(t, rng, p)
			default:
				paths = append(paths, link)
				os.Remove(link)
				switch rng.IntN(4) {
				case 0:
					must(t, os.Symlink(filepath.Join(targets, "missing"), link))
				case 1:
					must(t, os.Symlink(filepath.Join(targets, "a"), link))
				case 2:
					must(t, os.Symlink(filepath.Join(targets, "b"), link))
				default:
					must(t, os.Symlink(filepath.Join(targets, "a"), link))
					keydirtest.Replace(t, filepath.Join(targets, "a"), keydirtest.JWK(t, key(t, 7002+rng.IntN(50))))
				}
			}
		}
		if rng.IntN(3) == 0 {
			state++
			for range 1 + rng.IntN(3) {
				n := fmt.Sprintf("e%02d", rng.IntN(45))
				switch rng.IntN(5) {
				case 0:
					setA = setA.Delete(n)
				case 1:
					setB = setB.Put(n, []byte("junk"))
				case 2:
					setB = setB.Delete(n)
				default:
					setA = setA.Put(n, keydirtest.JWK(t, key(t, 22_000+rng.IntN(100))))
				}
			}
			fa.Set(FeedView{Set: setA, Group: group{}, State: state})
			if rng.IntN(4) != 0 {
				fb.Set(FeedView{Set: setB, Group: group{}, State: state})
			}
			if rng.IntN(3) == 0 {
				paths = append(paths, fa.Name())
			}
		}
		if rng.IntN(3) == 0 {
			var only []string
			for _, n := range narrowNames {
				if rng.IntN(20) == 0 {
					only = append(only, n)
				}
			}
			l.mu.Lock()
			l.only = map[int][]string{0: only}
			l.mu.Unlock()
		}
		h := hints{}
		switch rng.IntN(5) {
		case 0:
			h.all = true
		case 1, 2:
			for _, p := range paths {
				h.add(p)
			}
		case 3:
			for _, p := range paths {
				h.add(p)
			}
			h.early = true
		case 4:
			h.all, h.early = true, true
		}
		if rng.IntN(2) == 0 {
			l.reloadHolding(h)
		} else {
			l.reload(h)
		}
		l.mu.Lock()
		l.only = nil
		l.mu.Unlock()
		next := l.Snapshot()
		if next.diffed {
			edited++
		}
		checkEditedSnapshot(t, step, l, prev, prevFiles, next)
	}
	t.Logf("%d of 400 reloads edited", edited)
}

// mutateFile changes the key file p at random: removed, made unreadable
// as JSON, made writable by others or safe again, or given another key.
func mutateFile(t *testing.T, rng *rand.Rand, p string) {
	switch rng.IntN(7) {
	case 0:
		os.Remove(p)
	case 1:
		keydirtest.Replace(t, p, []byte("{not json"))
	case 2:
		if _, err := os.Stat(p); err == nil {
			must(t, os.Chmod(p, 0o666))
		}
	case 3:
		if _, err := os.Stat(p); err == nil {
			must(t, os.Chmod(p, 0o644))
		}
	default:
		keydirtest.Replace(t, p, keydirtest.JWK(t, key(t, 10_000+rng.IntN(300))))
	}
}

// checkEditedSnapshot fails t unless next, published after prev (whose
// files were prevFiles), is what a whole assembly of l's rows gives, with
// Diff, DiffNumbered, the problems logged, the rows' numbers and the key
// count agreeing with it.
func checkEditedSnapshot(t *testing.T, step int, l *Loader[string], prev *Snapshot[string], prevFiles []*File[string], next *Snapshot[string]) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	whole := l.wholeSnapshot()
	whole.numbers = next.numbers
	if !sameSnapshot(next, whole) || next.nfiles != whole.nfiles {
		t.Fatalf("step %d (diffed %v): the snapshot differs from one assembled whole: %d files %d problems %v, whole %d files %d problems %v",
			step, next.diffed, len(next.Files()), len(next.Problems), next.RevocationErr, len(whole.Files()), len(whole.Problems), whole.RevocationErr)
	}
	if (next.RevocationErr == nil) != (whole.RevocationErr == nil) || next.RevocationErr != nil && next.RevocationErr.Error() != whole.RevocationErr.Error() {
		t.Fatalf("step %d: RevocationErr %v, whole %v", step, next.RevocationErr, whole.RevocationErr)
	}
	gone, came := Diff(prev, next)
	wantGone, wantCame := DiffFiles(prevFiles, next.Files())
	if !slices.Equal(gone, wantGone) || !slices.Equal(came, wantCame) {
		t.Fatalf("step %d: Diff gave %d gone, %d came; comparing whole, %d and %d", step, len(gone), len(came), len(wantGone), len(wantCame))
	}
	if !slices.Equal(prev.Files(), prevFiles) {
		t.Fatalf("step %d: the previous snapshot changed", step)
	}
	gn, cn := DiffNumbered(prev, next)
	goneNums := map[uint32]bool{}
	for _, n := range gn {
		if prev.FileAt(n.Num) != n.File {
			t.Fatalf("step %d: a file gone is not prev's number %d", step, n.Num)
		}
		goneNums[n.Num] = true
	}
	for _, n := range cn {
		if next.FileAt(n.Num) != n.File {
			t.Fatalf("step %d: a file that came is not next's number %d", step, n.Num)
		}
		if goneNums[n.Num] && next != prev {
			t.Fatalf("step %d: number %d both gone and come", step, n.Num)
		}
	}
	// Problems logged: exactly the snapshot's.
	logged := map[string]bool{}
	for _, p := range next.Problems {
		logged[p.Error()] = true
	}
	if len(logged) != len(l.problems) {
		t.Fatalf("step %d: %d problems logged as current, the snapshot has %d", step, len(l.problems), len(logged))
	}
	for m := range logged {
		if !l.problems[m] {
			t.Fatalf("step %d: problem %q in the snapshot, never logged", step, m)
		}
	}
	// Numbers: every row's number names its file, in the snapshot and in
	// the loader's numbers, is not free, and is a row's alone.
	seen := map[uint32]bool{}
	for i := range l.states {
		for _, ch := range l.states[i].files.chunks {
			for k := range ch.len() {
				r := fileRow[string]{ch.head(k), ch.data(k)}
				if r.pending() != nil {
					t.Fatalf("step %d: a pending row left in source %d", step, i)
				}
				if r.num == 0 {
					continue
				}
				if seen[r.num] {
					t.Fatalf("step %d: number %d held by two rows", step, r.num)
				}
				seen[r.num] = true
				if next.numbers.at(r.num) == nil || l.numbers.at(r.num) != next.numbers.at(r.num) {
					t.Fatalf("step %d: number %d of a row names no file", step, r.num)
				}
				if slices.Contains(l.numbers.free, r.num) {
					t.Fatalf("step %d: number %d of a row is free", step, r.num)
				}
			}
		}
	}
	// The loader's count of trust entries.
	keys := 0
	for f := range next.All {
		if !l.cfg.Sources[f.Source()].Revocation {
			keys += len(f.Items())
		}
	}
	if keys != l.keys {
		t.Fatalf("step %d: Change.Keys %d, the snapshot holds %d", step, l.keys, keys)
	}
}

// The rescan's compare, which reads rows without the loader's lock,
// beside reloads that edit a single file's row (under -race).
func TestRescanBesideSingleFileEdits(t *testing.T) {
	home := t.TempDir()
	single, revoked := filepath.Join(home, "authorized_keys"), filepath.Join(home, "revoked_keys")
	keydirtest.Write(t, single, keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, revoked, keydirtest.JWK(t, key(t, 2)))
	l := New(Config[string]{Sources: []Source{{Path: single}, {Path: revoked, Revocation: true}}, Convert: fpConvert, Home: home})
	l.Reload()
	stop := keydirtest.Repeat(1, func() {
		h := l.compare().h
		l.applyRescan(h)
	})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		p := []string{single, revoked}[i%2]
		mutateFile(t, rng, p)
		l.reloadHolding(hints{early: i%3 == 0, paths: map[string]struct{}{p: {}}})
	}
	stop()
	l.Reload()
	checkEditedSnapshot(t, -1, l, l.Snapshot(), l.Snapshot().Files(), l.Snapshot())
}
