package keydir

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// fpsOf returns the fingerprints of items, as fpOf gives them.
func fpsOf[T any](items []T, fpOf func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fpOf(it)
	}
	return out
}

// TestSnapshotsStayAsPublished: a snapshot reads the loader's lists of
// rows (no list of its own), which is safe only if no reload writes a row
// once the reload that made it has ended. Reloads of every kind (full,
// by path, holding a file written moments ago, a feed's incremental and
// whole reads, a rescan's, with compare running beside them) edit, add,
// remove, rename and break files of two directories (one of more than
// chunkLen files), a single-file source and a feed, under names of odd
// bytes, while readers walk snapshots old and new: each snapshot must
// read the same every time (the race detector watches the rows), equal
// what was on disk when it was made (names, paths, keys, problems),
// count its files, and tell what changed since the one before as a whole
// comparison does. It runs with entries that hold a pointer (strings:
// every file keeps its File) and with entries that hold none (SPKI
// hashes: a file of one key of a directory or the feed is kept in the
// numbers' pages, its item in their mapped part, and read through them:
// docs/design.md, "Memory of a loaded store", step 5).
func TestSnapshotsStayAsPublished(t *testing.T) {
	steps := 300
	if testing.Short() {
		steps = 60
	}
	// The lean run takes half the steps: with -race on a loaded machine
	// of two cores, the package's tests came to its ten minutes with both
	// at 300.
	t.Run("files", func(t *testing.T) {
		snapshotsStayAsPublished(t, steps, newLoader, func(fp string) string { return fp })
	})
	t.Run("lean", func(t *testing.T) { snapshotsStayAsPublished(t, steps/2, newLeanLoader, jwk.FormatFingerprint) })
}

func snapshotsStayAsPublished[T any](t *testing.T, steps int, newLoader func(...Source) *Loader[T], fpOf func(T) string) {
	base := t.TempDir()
	dirs := []string{filepath.Join(base, "a.d"), filepath.Join(base, "b.d")}
	single := filepath.Join(base, "single.json")
	feed := newMemFeed("etcd:/fleet/authorized_keys")
	for _, d := range dirs {
		must(t, os.MkdirAll(d, 0o755))
	}
	l := newLoader(Source{Path: dirs[0], Dir: true}, Source{Path: dirs[1], Dir: true},
		Source{Path: single}, Source{Path: feed.Name(), Dir: true, Feed: feed})

	var keys [][]byte
	var fps []string
	for n := range 8 {
		k := key(t, n+1)
		keys, fps = append(keys, keydirtest.JWK(t, k)), append(fps, k.Fingerprint())
	}
	garbage := []byte("not a key\n")
	// Names of odd bytes: a space, a newline, non-ASCII, bytes that are
	// not UTF-8 (a problem in a feed, CheckName's), and names that sort
	// around one another.
	names := []string{"a.json", "a b.json", "a\nb", "é.json", "\xff\xfe", "z", "zz.pub", "0"}

	// model is what each source holds: name → index of its key in keys,
	// or -1 for content that does not parse (a problem).
	model := make([]map[string]int, 4)
	for i := range model {
		model[i] = map[string]int{}
	}
	// Enough files in one directory that its list is several chunks: an
	// edit then splits a full chunk, and a reload of a few files folds
	// them where a search finds them (foldSource), not by a walk.
	for n := range chunkLen + 100 {
		name := fmt.Sprintf("f%04d", n)
		keydirtest.Write(t, pathIn(dirs[0], name), keys[0])
		model[0][name] = 0
	}
	set := NewFeedSet()
	feed.Set(FeedView{Set: set})
	expect := func() string {
		var b strings.Builder
		for i, m := range model {
			for _, name := range slices.Sorted(func(yield func(string) bool) {
				for n := range m {
					if !yield(n) {
						return
					}
				}
			}) {
				k := m[name]
				path := prefixOf(l.cfg.Sources[i]) + name
				if i == 3 && CheckFileName(name) != nil {
					k = -1
				}
				if k < 0 {
					fmt.Fprintf(&b, "problem %q\n", path)
					continue
				}
				fmt.Fprintf(&b, "%d %q %q %q\n", i, name, path, fps[k])
			}
		}
		return b.String()
	}
	// published is what each generation read when the writer made it.
	var published sync.Map
	digest := func(s *Snapshot[T]) string {
		// Problems come in the order of the files: they are compared as
		// a set, before the files.
		var probs []string
		for _, p := range s.Problems {
			probs = append(probs, "problem "+strconv.Quote(p.Path)+"\n")
		}
		slices.Sort(probs)
		var b strings.Builder
		b.WriteString(strings.Join(probs, ""))
		n := 0
		for f := range s.All {
			b.WriteString(strconv.Itoa(f.Source()) + " " + strconv.Quote(f.Name()) + " " + strconv.Quote(f.Path()) + " " + strconv.Quote(strings.Join(fpsOf(f.Items(), fpOf), ",")) + "\n")
			n++
		}
		if n != s.numFiles() {
			fmt.Fprintf(&b, "%d files counted as %d\n", n, s.numFiles())
		}
		return b.String()
	}
	sortedExpect := func() string { // problems first, as digest writes them
		var probs, files []string
		for _, line := range strings.SplitAfter(expect(), "\n") {
			switch {
			case line == "":
			case strings.HasPrefix(line, "problem "):
				probs = append(probs, line)
			default:
				files = append(files, line)
			}
		}
		slices.Sort(probs)
		return strings.Join(probs, "") + strings.Join(files, "")
	}

	var failed sync.Once
	fail := func(format string, args ...any) {
		failed.Do(func() { t.Errorf(format, args...) })
	}
	check := func(s *Snapshot[T]) {
		got := digest(s)
		if was, ok := published.LoadOrStore(s.Generation, got); ok && was != got {
			fail("generation %d reads otherwise than when it was published:\nthen:\n%s\nnow:\n%s", s.Generation, was, got)
		}
	}
	// Readers: the current snapshot and a few older ones, again and again.
	var mu sync.Mutex
	var old []*Snapshot[T]
	stopReaders := keydirtest.Repeat(2, func() {
		s := l.Snapshot()
		check(s)
		mu.Lock()
		if len(old) < 4 {
			old = append(old, s)
		} else {
			old[rand.IntN(len(old))] = s
		}
		held := slices.Clone(old)
		mu.Unlock()
		for _, s := range held {
			check(s)
		}
	})
	// A rescan's compare, which reads the loader's lists without its lock.
	stopCompare := keydirtest.Repeat(1, func() { l.compare() })

	rng := rand.New(rand.NewPCG(7, 11))
	prev := l.Reload()
	heldBefore := false
	for step := range steps {
		var touched []string
		for range 1 + rng.IntN(3) {
			src := rng.IntN(4)
			name := names[rng.IntN(len(names))]
			k := rng.IntN(len(keys)+1) - 1
			data := garbage
			if k >= 0 {
				data = keys[k]
			}
			switch src {
			case 0, 1:
				path := pathIn(dirs[src], name)
				switch rng.IntN(4) {
				case 0:
					if _, ok := model[src][name]; ok {
						must(t, os.Remove(path))
						delete(model[src], name)
					}
				case 1: // a rename, within the directory or to the other
					to, toName := rng.IntN(2), names[rng.IntN(len(names))]
					if _, ok := model[src][name]; ok && (to != src || toName != name) {
						must(t, os.Rename(path, pathIn(dirs[to], toName)))
						model[to][toName] = model[src][name]
						delete(model[src], name)
						touched = append(touched, pathIn(dirs[to], toName))
					}
				default:
					keydirtest.Put(t, path, data)
					model[src][name] = k
				}
				touched = append(touched, path)
			case 2:
				if rng.IntN(4) == 0 {
					if _, ok := model[2][single]; ok {
						must(t, os.Remove(single))
						delete(model[2], single)
					}
				} else {
					keydirtest.Put(t, single, data)
					model[2][single] = k
				}
				touched = append(touched, single)
			case 3:
				if rng.IntN(4) == 0 {
					set = set.Delete(name)
					delete(model[3], name)
				} else {
					set = set.Put(name, data)
					model[3][name] = k
				}
				feed.Set(FeedView{Set: set})
				touched = append(touched, feed.Name())
			}
		}
		switch mode := rng.IntN(5); {
		case mode == 0 || heldBefore:
			l.reload(hints{all: true})
			heldBefore = false
		case mode == 4: // a reload as events come: a file failing moments after its write keeps its row
			var h hints
			for _, p := range touched {
				h.add(p)
			}
			h.early = true
			if len(l.reloadHolding(h)) > 0 {
				heldBefore = true // the model is not what it holds until a full reload reads them again
			}
		case mode == 1:
			l.applyRescan(l.compare().h)
			l.reload(hints{paths: map[string]struct{}{feed.Name(): {}}}) // a feed tells its changes itself
		default:
			var h hints
			for _, p := range touched {
				h.add(p)
			}
			l.reload(h)
		}
		next := l.Snapshot()
		if got, want := digest(next), sortedExpect(); !heldBefore && got != want {
			t.Fatalf("step %d, generation %d:\ngot:\n%s\nwant:\n%s", step, next.Generation, got, want)
		}
		check(next)
		gone, came := DiffRefs(prev, next)
		wgone, wcame := diffFiles(prev.refs(), next.refs(), refOrder[T], func(x, y FileRef[T]) bool { return x.Num() == y.Num() && x.Gen() == y.Gen() })
		if !slices.Equal(gone, wgone) || !slices.Equal(came, wcame) {
			t.Fatalf("step %d: Diff from generation %d to %d: gone %d came %d, a whole comparison %d and %d", step, prev.Generation, next.Generation, len(gone), len(came), len(wgone), len(wcame))
		}
		prev = next
	}
	stopCompare()
	stopReaders()
}
