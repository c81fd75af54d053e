package keydir

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keytool/keytool/internal/trustfile"
)

// The admin index's file stamps (docs/design.md, "The admin index") let
// a removal prove the index complete without reading every file: beside
// the shards, the index keeps, for each file whose records it holds, the
// stamp of the content those records were made from (trustfile.Stamp:
// inode, size, mtime and ctime to the nanosecond, mode, owner). Any write
// into a file changes its ctime, which no user can set back, and a rename
// over it changes its inode; a file whose stamp is the recorded one holds
// what the index says. A removal stats every file of the directory (one
// listing, one fstatat each, in parallel), reads only those whose stamp
// differs or is not recorded, adds their records, and then trusts the
// index to name every copy of what it removes.
//
// Layout: stamp files s0000 … by the first bits of the FNV-1a hash of a
// file's name (as many as make about 2,048 files a stamp file, so that a
// change rewrites a small one), each of records (name, stamp) and a CRC.

const stampMagic = "keytool admin index stamps 1\n"

// StampRacy is how recent a file's ctime may be for its stamp to go
// unrecorded: on a file system whose timestamps are coarser than a write
// (before Linux 6.13's fine-grained timestamps, a clock tick), a write
// in place just after the read, within the same tick and of the same
// size, would leave the stamp as it was. Such a file is read again by
// the next check instead (as git treats a "racily clean" file). (A
// variable for tests.)
var StampRacy = 2 * time.Second

// stampBits is the number of bits that give n files about 2,048 files a
// stamp file.
func stampBits(n int) int {
	bits := 0
	for bits < 12 && n>>bits > 2048 {
		bits++
	}
	return bits
}

// stampFileOf is the stamp file that holds the stamp of the file name.
func (x sourceIndex) stampFileOf(name string) int {
	if x.sbits == 0 {
		return 0
	}
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return int(h >> (32 - x.sbits))
}

func stampFileName(n int) string { return fmt.Sprintf("s%04x", n) }

// fileStamps are the recorded stamps of a directory's files, in stamp
// files: name → the stamp's encoding.
type fileStamps []map[string]string

// readStamps reads every stamp file; ok is false when one does not read
// back as written (the index cannot then prove itself complete).
func (x sourceIndex) readStamps() (fileStamps, bool) {
	out := make(fileStamps, 1<<x.sbits)
	bad := make([]bool, len(out))
	ForEach(len(out), func(n int) {
		body, ok := x.read(stampFileName(n), stampMagic)
		if !ok {
			bad[n] = true
			return
		}
		s := string(body) // one copy: the names and stamps are its substrings
		m := map[string]string{}
		for len(s) > 0 {
			if len(s) < 3 {
				bad[n] = true
				return
			}
			nl, sl := int(s[0])|int(s[1])<<8, int(s[2])
			if len(s) < 3+nl+sl || !listedName(s[3:3+nl]) {
				bad[n] = true
				return
			}
			m[s[3:3+nl]] = s[3+nl : 3+nl+sl]
			s = s[3+nl+sl:]
		}
		out[n] = m
	})
	for _, b := range bad {
		if b {
			return nil, false
		}
	}
	return out, true
}

// writeStamps writes the stamp files numbered in which (every one when
// which is nil).
func (x sourceIndex) writeStamps(st fileStamps, which map[int]bool) error {
	for n, m := range st {
		if which != nil && !which[n] {
			continue
		}
		var body []byte
		for name, enc := range m {
			body = binary.LittleEndian.AppendUint16(body, uint16(len(name)))
			body = append(body, byte(len(enc)))
			body = append(body, name...)
			body = append(body, enc...)
		}
		if err := x.write(stampFileName(n), stampMagic, body); err != nil {
			return err
		}
	}
	return nil
}

// newStamps makes the stamps of the files given (name → stamp) for an
// index of x.sbits bits.
func (x sourceIndex) newStamps(files map[string]trustfile.Stamp) fileStamps {
	out := make(fileStamps, 1<<x.sbits)
	for n := range out {
		out[n] = map[string]string{}
	}
	for name, st := range files {
		out[x.stampFileOf(name)][name] = encodeStamp(st)
	}
	return out
}

func encodeStamp(st trustfile.Stamp) string {
	b, _ := st.AppendBinary(make([]byte, 0, 64))
	return string(b)
}

// listedStamp is one entry of a directory and its stamp now.
type listedStamp struct {
	name  string
	stamp trustfile.Stamp
	err   error // the stat failed: the file must be read to know
	skip  bool  // a directory: not a file a load reads
	same  bool  // the stamp is the one recorded (set by verify)
}

// statDir lists the directory dir and stats every entry that a load
// would read (relative to the open directory, in parallel), calling each
// on the entry once it is stat'ed (from several goroutines).
func statDir(dir string, each func(*listedStamp)) ([]listedStamp, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]listedStamp, 0, len(names))
	for _, name := range names {
		if !Ignored(name) {
			out = append(out, listedStamp{name: name})
		}
	}
	ForEach(len(out), func(i int) {
		e := &out[i]
		st, mode, err := trustfile.StampAt(f, e.name)
		e.stamp, e.err, e.skip = st, err, err == nil && mode.IsDir()
		each(e)
	})
	return out, nil
}

// stampsOf returns the stamps of the content the loader read for the
// files of directory source i that loaded whole (only those named, when
// names is not nil), leaving out those changed less than StampRacy
// before since: a file skipped, partly or whole, or too recent is read
// again by the next check.
func (l *Loader[T]) stampsOf(i int, names map[string]bool, since time.Time) map[string]trustfile.Stamp {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]trustfile.Stamp{}
	for f := range l.states[i].files.all {
		if names != nil && !names[f.name()] {
			continue
		}
		if f.read && f.file != nil && f.skipped == nil && f.problem == nil && f.st.Changed().Before(since.Add(-StampRacy)) {
			out[f.name()] = f.st
		}
	}
	return out
}

// verify proves the index of directory source i complete for the
// directory as it is now, under the index's lock: it stats every file,
// reads through the loader (the trust-file rule, the parsers) those whose
// stamp is not the one recorded, adds their records to the shards, and
// records their stamps and the directory's. Records of what a changed or
// vanished file held before stay: a file the index names that no longer
// holds a term just does not match. It returns the index, and false
// when it cannot prove it complete: no stamps, the directory changed
// during the check, or so many files changed that reading them all is
// as cheap (the caller then reads every file).
func (fl *focusedLoad[T]) verify(i int) (*sourceIndex, bool) {
	x := fl.index(i)
	head := x.head()
	if head == nil || !bytes.Equal(head, fl.heads[i]) {
		return nil, false
	}
	recorded, ok := x.readStamps()
	if !ok {
		return nil, false
	}
	start := time.Now()
	dir := x.stamp()
	listed, err := statDir(x.src, func(e *listedStamp) {
		if e.err != nil || e.skip {
			return
		}
		var buf [64]byte
		enc, _ := e.stamp.AppendBinary(buf[:0])
		rec, ok := recorded[x.stampFileOf(e.name)][e.name]
		e.same = ok && rec == string(enc)
	})
	if err != nil {
		return nil, false
	}
	changed := map[string]bool{}
	same := 0
	for _, e := range listed {
		switch {
		case e.same:
			same++
		case !e.skip:
			changed[e.name] = true
		}
	}
	if len(changed) > 256 && len(changed) > len(listed)/4 {
		return nil, false
	}
	came, err := fl.reindex(i, changed)
	if err != nil || x.update(nil, came) != nil {
		return nil, false
	}
	touched := fl.restamp(i, x, recorded, listed, changed, same, start)
	if !bytes.Equal(x.stamp(), dir) || x.writeStamps(recorded, touched) != nil {
		return nil, false // the directory changed during the check
	}
	if !bytes.Equal(dir, head) {
		if x.writeHead(dir) != nil {
			return nil, false
		}
		fl.heads[i] = dir
	}
	return x, true
}

// reindex reads the files of source i named in changed (through the
// loader) and returns their records.
func (fl *focusedLoad[T]) reindex(i int, changed map[string]bool) ([]indexRecord, error) {
	if len(changed) == 0 {
		return nil, nil
	}
	src := fl.l.cfg.Sources[i].Path
	paths := make([]string, 0, len(changed))
	for name := range changed {
		paths = append(paths, filepath.Join(src, name))
	}
	snap := fl.l.Reload(paths...)
	var files []*File[T]
	for _, f := range snap.Files() {
		if f.Source == i && changed[filepath.Base(f.Path)] {
			files = append(files, f)
		}
	}
	var recs []indexRecord
	for _, r := range fl.problemRecords(snap, i) {
		if changed[r.name] {
			recs = append(recs, r)
		}
	}
	return append(fl.records(i, files), recs...), nil
}

// restamp brings the recorded stamps up to date after a check: the
// changed files get the stamps of what was read (or none), and the files
// no longer listed lose theirs. It returns the stamp files it changed.
func (fl *focusedLoad[T]) restamp(i int, x *sourceIndex, recorded fileStamps, listed []listedStamp, changed map[string]bool, same int, start time.Time) map[int]bool {
	touched := map[int]bool{}
	fresh := fl.l.stampsOf(i, changed, start)
	for name := range changed {
		n := x.stampFileOf(name)
		if _, ok := recorded[n][name]; ok {
			delete(recorded[n], name)
			touched[n] = true
		}
		if st, ok := fresh[name]; ok {
			recorded[n][name] = encodeStamp(st)
			touched[n] = true
		}
	}
	total := 0
	for _, m := range recorded {
		total += len(m)
	}
	if total == same+len(fresh) {
		return touched // every recorded file is listed
	}
	// Some recorded files are no longer listed (or no longer files).
	here := make(map[string]bool, len(listed))
	for _, e := range listed {
		if !e.skip {
			here[e.name] = true
		}
	}
	for n, m := range recorded {
		for name := range m {
			if !here[name] {
				delete(m, name)
				touched[n] = true
			}
		}
	}
	return touched
}
