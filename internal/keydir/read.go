package keydir

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// ForEach calls do(i) for every i in [0, n), the way the loader reads
// and parses files: one after the other for up to 64, else on
// min(GOMAXPROCS, ceil(n/64)) goroutines, each taking the next i from a
// shared counter. (The benchmarks' read floor reads the same way, so that
// a load is measured against the same bytes read with the same
// parallelism.)
func ForEach(n int, do func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+63)/64)
	if workers <= 1 {
		for i := range n {
			do(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				do(i)
			}
		})
	}
	wg.Wait()
}

// runJobs reads and parses the queued files, in parallel when there are
// many. (fold then puts what they found in their sources' lists.)
func (l *Loader[T]) runJobs(jobs []*fileState[T]) {
	ForEach(len(jobs), func(i int) { l.load(jobs[i]) })
}

// load reads and parses one file into state, keeping the entries of the one
// it replaces when the content did not change.
func (l *Loader[T]) load(state *fileState[T]) {
	if state.held {
		return // held at its stat (Loader.holdEarly)
	}
	old := state.old
	state.old = nil
	state.read = true
	if l.beforeRead != nil {
		l.beforeRead(state.path)
	}
	readFile := l.cfg.ReadFile
	switch {
	case readFile != nil: // the caller's
	case state.unchecked:
		// Listed as a regular file and not stat'ed since: read as such,
		// never through a link put there meanwhile, whose target's
		// directories no check has seen.
		readFile = trustfile.ReadListed
	default:
		readFile = trustfile.Read
	}
	data, fi, err := readFile(state.path)
	l.readBytes.Add(int64(len(data)))
	l.read(state, old, data, fi, err)
	if p := state.problem; p != nil && l.holds(state.path, fi, p) {
		// Written moments ago and not parsable: most likely still being
		// written. Keep what was there until events are quiet. (A file
		// that fails the trust-file rule is not being written: that is
		// decided at once — unless this is the reload applied the moment
		// the file came, before its writer could chmod it: holdEarly. A
		// file held a second already is not held again: heldSince.)
		state.held = true
		state.old = old
	}
}

// read fills state from what reading its file gave.
func (l *Loader[T]) read(state *fileState[T], old *fileRow[T], data []byte, fi fs.FileInfo, err error) {
	src := l.cfg.Sources[state.src]
	if errors.Is(err, os.ErrNotExist) {
		if isLink(state.path) {
			// The link's target went between stat and read: a problem
			// (failing closed in a revocation source), never "no file".
			state.problem = problemOf(state.path, &trustfile.LinkError{Path: state.path, Err: err}, src.Revocation)
			return
		}
		state.gone = true
		return
	}
	if err != nil {
		state.problem = problemOf(state.path, err, src.Revocation)
		return
	}
	checked := state.st // from the stat the rule was applied to; zero if unchecked
	if fi != nil {
		state.st = trustfile.StampOf(fi)
	}
	// The rule holds for the file that was read, not only for the one
	// stat'ed: its own mode and owner come from the open file, and a file
	// replaced between the checks and the read is not used (OpenSSH checks
	// the file it opened, with fstat).
	// (The file's own check needs no Top: no rule(i), which costs a
	// filepath.Dir per file.)
	if err := (trustfile.Rule{Off: l.cfg.NoStrictModes}).CheckMode(state.path, fi); err != nil {
		state.problem = problemOf(state.path, err, src.Revocation)
		return
	}
	if !state.unchecked && !l.cfg.NoStrictModes && !state.st.SameFile(checked) {
		state.problem = problemOf(state.path, &trustfile.ChangedError{Path: state.path}, src.Revocation)
		return
	}
	state.unchecked = false
	state.sum = contentSum(data)
	if old != nil && old.sum == state.sum && !isPermProblem(old.problem()) && (old.num != 0 || old.problem() != nil) {
		// (A row is made only of a state that was read, or failed at its
		// stat with a zero sum: it needs no read flag.) The same file
		// keeps its number, and with it its generation and its File: the
		// state keeps the number, not the File: a file of one key has
		// none of its own (docs/design.md, "Memory of a loaded
		// store", step 5). (Reads run in parallel, while nothing gives
		// numbers: place before them, fold after.)
		state.num, state.problem, state.skipped = old.num, old.problem(), old.skipped()
		return
	}
	state.parsed, state.problem, state.skipped = l.parse(int(state.src), state.path, data)
}

// parse turns a file's content into entries, or a problem.
//
// A file that grants trust (authorized keys, pinned hosts) is read entry
// by entry (jwk.ParseSet): an entry that does not parse or convert is a
// Problem of its own (Entry set, located by line or by member, as
// "keys[2].x"), and the file's other entries load. Skipping an entry only
// ever trusts less, and its Problem is a Problem like any other: a store
// that must not guess while trust was skipped (knownhosts' unknown
// hosts, authkeys' enrollment) still sees it. A revocation file is read
// whole (jwk.Parse): one bad entry is a problem of the file, which
// refuses every key.
//
// It returns the file and the problems of its skipped entries, or the
// problem of the whole file.
func (l *Loader[T]) parse(i int, path string, data []byte) (parsed[T], *Problem, []Problem) {
	src := SourceRef{Index: i, Source: l.cfg.Sources[i]}
	if l.cfg.Parse != nil {
		items, err := l.cfg.Parse(src, path, data)
		if err != nil {
			return parsed[T]{}, problemOf(path, err, src.Revocation), nil
		}
		return parsed[T]{file: l.newFile(i, path, items)}, nil, nil
	}
	got, p := l.parseWhole(src, path, data)
	if src.Revocation || p == nil {
		// A revocation file, or the common case of a file that loads
		// whole (read the cheapest way: jwk.Parse is what ParseSet
		// returns when no entry is bad).
		return got, p, nil
	}
	entries, err := jwk.ParseSet(data)
	if err != nil {
		return parsed[T]{}, problemOf(path, err, false), nil
	}
	items := make([]T, 0, len(entries))
	var skipped []Problem
	var rare rareList
	for _, e := range entries {
		t, r, p := l.convertEntry(src, path, e)
		switch {
		case p != nil && len(entries) == 1:
			return parsed[T]{}, p, nil // a file of one entry is that entry: the file is the problem
		case p != nil:
			p.Entry = true
			skipped = append(skipped, *p)
		default:
			items = append(items, t)
			rare.add(r)
		}
	}
	f := l.newFile(i, path, items)
	keepRare(f, &rare)
	return parsed[T]{file: f}, nil, skipped
}

// convertEntry makes the caller's entry of one entry of a file, or the
// problem that names it: by the line or member ParseSet gave, with the
// member Convert names after it ("keys[2].address").
func (l *Loader[T]) convertEntry(src SourceRef, path string, e jwk.SetEntry) (T, any, *Problem) {
	var t T
	if e.Err != nil {
		return t, nil, problemOf(path, e.Err, false)
	}
	t, r, err := l.convert(src, path, e.Key)
	if err != nil {
		p := problemOf(path, err, false)
		if p.Key == nil {
			sum := e.Key.SPKIHash()
			p.Key = &sum
		}
		if p.Line == 0 {
			p.Line = e.Line
		}
		if m := e.Member(); m != "" {
			p.Member = strings.TrimSuffix(m+"."+p.Member, ".")
		}
		return t, nil, p
	}
	return t, r, nil
}

// convert makes the caller's entry of k and its rare part (Config.Convert,
// Config.Rare).
func (l *Loader[T]) convert(src SourceRef, path string, k *jwk.Key) (t T, rare any, err error) {
	if l.cfg.Convert == nil {
		return t, nil, nil
	}
	if t, err = l.cfg.Convert(src, path, k); err != nil || l.cfg.Rare == nil {
		return t, nil, err
	}
	rare, err = l.cfg.Rare(src, path, k)
	return t, rare, err
}

// rareList gathers the rare parts of a file's items (Config.Rare), making
// a list only once one of them is not nil: most files have none.
type rareList struct {
	list []any
	n    int
}

func (r *rareList) add(v any) {
	if v != nil && r.list == nil {
		r.list = make([]any, r.n, r.n+1)
	}
	if r.list != nil {
		r.list = append(r.list, v)
	}
	r.n++
}

// keepRare gives f the rare parts r gathered, in a copy of its source's
// part of its own (fileSource).
func keepRare[T any](f *File[T], r *rareList) {
	if r.list != nil {
		own := *f.src
		own.rare = slices.Clip(r.list)
		f.src = &own
	}
}

// parseWhole reads a file that must load whole or not at all: any key
// that does not parse or convert makes the file a problem.
func (l *Loader[T]) parseWhole(src SourceRef, path string, data []byte) (parsed[T], *Problem) {
	parse := jwk.Parse
	if src.Revocation {
		// A refused key is refused whatever its "use" says it is for:
		// refusing is not using, and skipping it would refuse every key.
		parse = jwk.ParseAnyUse
	}
	keys, err := parse(data)
	if err != nil {
		return parsed[T]{}, problemOf(path, err, src.Revocation)
	}
	var (
		items []T // of a file of several keys, at its exact size: a big set's array is kept as it is
		one   T   // of a file of one: no array of its own (File)
		rare  rareList
	)
	if len(keys) != 1 {
		items = make([]T, 0, len(keys))
	}
	for n, k := range keys {
		t, r, err := l.convert(src, path, k)
		if err != nil {
			p := problemOf(path, err, src.Revocation)
			if len(keys) > 1 {
				p.Member = strings.TrimSuffix("keys["+strconv.Itoa(n)+"]."+p.Member, ".")
			}
			return parsed[T]{}, p
		}
		if len(keys) == 1 {
			one = t
		} else {
			items = append(items, t)
		}
		rare.add(r)
	}
	if len(keys) == 1 {
		if rare.list == nil {
			return l.parsedOne(src.Index, path, one), nil
		}
		items = []T{one} // a rare file: its File holds its rare part
	}
	f := l.newFile(src.Index, path, items)
	keepRare(f, &rare)
	return parsed[T]{file: f}, nil
}

// contentSum is what a fileRow keeps of its content: 11 bytes of a
// SHA-256 keyed with a secret of the process (sumKey). It only spares the
// parse of bytes read before; the key keeps anyone who may write a trust
// file from searching offline for two contents with the same 11 bytes,
// which would let them swap what a running loader keeps for what the file
// says. Without the key, a new content of a file passes for the old one
// only by chance, once in 2^88: an attacker can try no faster than the
// loader reads the file, and learns nothing from a miss (at a thousand
// reads a second, some 5·10^15 years for an even chance). (11 bytes, not 16,
// leave room in the row for the file's number and its odd stamp part:
// rowData.)
func contentSum(data []byte) (sum contentSumOf) {
	h := sha256.New()
	h.Write(sumKey[:])
	h.Write(data)
	var full [sha256.Size]byte
	copy(sum[:], h.Sum(full[:0]))
	return sum
}

// contentSumOf is contentSum's result.
type contentSumOf [11]byte

// sumKey keys contentSum: random, never written anywhere.
var sumKey = func() (k [32]byte) {
	rand.Read(k[:]) // never fails (crypto/rand)
	return k
}()
