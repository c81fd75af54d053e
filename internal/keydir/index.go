package keydir

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/trustfile"
)

// The admin index (docs/design.md, "The admin index") tells an admin
// command which files of a directory source may hold a key, a name or an
// address, so that it reads those files and not the whole directory. It
// never decides anything: the files it names are read and checked as any
// load reads them, and a store made from them decides as always. It is a
// cache, kept in the home's index directory (one subdirectory per source
// directory), trusted only while the source directory's stamp (size,
// mtime, ctime, inode, mode, owner) is the one recorded with it (the
// head's, or the last of the log's), and brought up to date from the
// files' stamps or rebuilt from a full load otherwise.
//
// Layout of one source directory's index:
//
//	head        magic, the source's path, the shard bits, the stamp file bits,
//	            the directory's stamp, a CRC
//	0000 …      shards by a term's first bits (as many as make ~64 records a
//	            shard): records (term, file name), a CRC
//	s0000 …     the stamps of the files the records were made from (stamps.go)
//	log         the commands' changes since the head (indexlog.go)

// Term is what the admin index maps to the files that hold it: an entry's
// SPKI hash (KeyTerm) or the SHA-256 of a name or an address
// (StringTerm).
type Term [32]byte

// KeyTerm is the term of a key: its SPKI hash.
func KeyTerm(sum [32]byte) Term { return Term(sum) }

// StringTerm is the term of a string of a kind ("name", "addr", …).
func StringTerm(kind, s string) Term {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(s))
	return Term(h.Sum(nil))
}

// problemTerm indexes the files that were skipped: a focused load reads
// them all again, so that a store knows its skipped files (they can make
// a decision stricter, never looser).
var problemTerm = StringTerm("problem", "")

// Query is what an admin command looks for: whole terms, and prefixes of
// SPKI hashes (a libtrust key ID names the first 30 bytes).
type Query struct {
	Terms    []Term
	Prefixes [][]byte
}

const (
	indexMagic = "keytool admin index 3\n"
	shardMagic = "keytool admin index shard 2\n"
	genMagic   = "keytool admin index generation 1\n"
)

// sourceIndex is the index of one source directory.
type sourceIndex struct {
	dir   string // where the index files are
	src   string // the source directory's path
	rule  trustfile.Rule
	bits  int // a term's shard is its first bits bits (from the head)
	sbits int // a file's stamp file is its name hash's first sbits bits (from the head)
	// d is the index directory, opened and checked (the trust-file rule)
	// on the first read, so that each file is then read relative to it:
	// four system calls instead of a climb of its path. Closed by close.
	d *trustfile.Dir
	// openErr is why d did not open (the trust-file rule's refusal, or
	// none there): for a server's word on why it decides nothing early.
	openErr error
	// From head: the head file's CRC, and the log that follows it
	// (indexlog.go): its changes in order, the bytes of it that read back
	// as written, and whether it has more (or is another head's).
	headCRC uint32
	pending []logEntry
	logSize int
	logBad  bool
}

func newSourceIndex(top, src string, rule trustfile.Rule) *sourceIndex {
	h := sha256.Sum256([]byte(src))
	return &sourceIndex{dir: filepath.Join(top, hex.EncodeToString(h[:8])), src: src, rule: rule}
}

// stamp is the source directory's stamp now, as the head records it: a
// directory that does not exist has the empty stamp.
func (x *sourceIndex) stamp() []byte {
	fi, err := os.Stat(x.src)
	if err != nil {
		return nil
	}
	b, _ := trustfile.StampOf(fi).AppendBinary(nil)
	return b
}

// version tells one writing of the index from another: the random
// generation its last rebuild wrote (none: an index an older keytool
// built), then the stamp of its head file (a rebuild by any keytool
// writes a new one; so does a proof that moved the head). A rebuild
// writes records from a full load, which may be older than what a proof
// read since at the same head (a file written in place during that
// load), so that a server that proved the index must see it is no
// longer the one proved (asProved), and a server's rewrite must see that
// another process wrote it meanwhile (IndexAfter). A proof's other
// writes (the stamps and records of the files it read) add what is true
// now, and leave it. Not the index directory's stamp: every proof's
// writes move it, and on kernels before 6.13 a rebuild within one clock
// tick keeps it (found by review). Called with the index locked.
func (x *sourceIndex) version() []byte {
	gen, _ := x.read("gen", genMagic)
	v := append([]byte(nil), gen...)
	v = append(v, 0)
	if fi, err := os.Stat(filepath.Join(x.dir, "head")); err == nil {
		v, _ = trustfile.StampOf(fi).AppendBinary(v)
	}
	return v
}

// refused is why the trust-file rule refuses the index's directory or
// the one above it (nil where it does not, or where they are missing
// and would be made): nothing is read from there, nor written into it.
func (x *sourceIndex) refused() error {
	if err := x.openErr; err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := x.rule.CheckDir(filepath.Dir(x.dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// head returns the stamp the index was last made for (nil: no index, or
// one that does not read back as written): the head's, followed along
// the log of the commands' changes since (readLog). It sets x.bits and
// x.sbits from the head.
func (x *sourceIndex) head() []byte {
	body, ok := x.read("head", indexMagic)
	if !ok {
		return nil
	}
	path, rest, ok := bytes.Cut(body, []byte{0})
	if !ok || string(path) != x.src || len(rest) < 2 || rest[0] > 16 || rest[1] > 12 {
		return nil
	}
	x.bits, x.sbits = int(rest[0]), int(rest[1])
	x.headCRC = headCRC(body)
	stamp, ok := x.readLog(rest[2:])
	if !ok {
		return nil
	}
	return stamp
}

// headCRC is the CRC of the head whose body is body, which its log
// starts with.
func headCRC(body []byte) uint32 {
	return crc32.Update(crc32.ChecksumIEEE([]byte(indexMagic)), crc32.IEEETable, body)
}

// writeHead writes the head for stamp: the log's changes are written
// into the shards first, and the log goes.
func (x *sourceIndex) writeHead(stamp []byte) error {
	if err := x.foldLog(nil, nil); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(x.dir, "log")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	body := append([]byte(x.src), 0, byte(x.bits), byte(x.sbits))
	body = append(body, stamp...)
	x.headCRC, x.pending, x.logSize, x.logBad = headCRC(body), nil, 0, false
	return x.write("head", indexMagic, body)
}

// shardBits is the number of bits that give n records about 64 records
// a shard.
func shardBits(n int) int {
	bits := 4
	for bits < 16 && n>>bits > 64 {
		bits++
	}
	return bits
}

// read reads one index file through the trust-file rule and checks its
// magic and CRC, returning its body.
func (x *sourceIndex) read(name, magic string) ([]byte, bool) {
	if !x.open() {
		return nil, false
	}
	data, _, err := x.d.ReadFile(name)
	if err != nil || len(data) < len(magic)+4 || string(data[:len(magic)]) != magic {
		return nil, false
	}
	body := data[:len(data)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, false
	}
	return body[len(magic):], true
}

// open opens the index directory for reads, once.
func (x *sourceIndex) open() bool {
	if x.d == nil {
		d, err := x.rule.OpenDir(x.dir)
		if err != nil {
			x.openErr = err
			return false
		}
		x.d = d
	}
	return true
}

// close closes the index directory opened for reads.
func (x *sourceIndex) close() {
	if x.d != nil {
		x.d.Close()
		x.d = nil
	}
}

// write replaces one index file. Every reader holds the index's lock
// (lockIndex), and a file missing or not as written makes the index
// stale: the old file is removed rather than renamed over, which on ext4
// costs a write-back of the new one's data (atomicfile.WriteLocked).
func (x *sourceIndex) write(name, magic string, body []byte) error {
	data := append([]byte(magic), body...)
	data = binary.LittleEndian.AppendUint32(data, crc32.ChecksumIEEE(data))
	return atomicfile.WriteLocked(filepath.Join(x.dir, name), data, 0o600)
}

// indexRecord is one (term, file name) pair of a shard.
type indexRecord struct {
	term Term
	name string
}

// shardOf is the shard of a term (or of an SPKI hash prefix of at least
// two bytes).
func (x *sourceIndex) shardOf(t []byte) int {
	return int(binary.BigEndian.Uint16(t)) >> (16 - x.bits)
}

func shardName(n int) string { return fmt.Sprintf("%04x", n) }

// shard reads the records of one shard; ok is false when the shard does
// not read back as written (the index is then stale).
func (x *sourceIndex) shard(b int) ([]indexRecord, bool) {
	body, ok := x.read(shardName(b), shardMagic)
	if !ok {
		return nil, false
	}
	var out []indexRecord
	for len(body) > 0 {
		if len(body) < 34 {
			return nil, false
		}
		var r indexRecord
		copy(r.term[:], body)
		n := int(binary.LittleEndian.Uint16(body[32:]))
		if len(body) < 34+n {
			return nil, false
		}
		r.name = string(body[34 : 34+n])
		if !listedName(r.name) {
			return nil, false // never written so: not an index to trust
		}
		out = append(out, r)
		body = body[34+n:]
	}
	return x.applyLog(b, out), true
}

// listedName reports whether name is one a listing of the directory
// loads: a directory entry's own name (no separator, nor "." or ".."),
// not an ignored one. An index naming another file would have a command
// read a file that a full load does not.
func listedName(name string) bool {
	return !Ignored(name) && !strings.ContainsRune(name, '/') && !strings.ContainsRune(name, filepath.Separator) && !strings.ContainsRune(name, 0)
}

func (x *sourceIndex) writeShard(b int, recs []indexRecord) error {
	var body []byte
	for _, r := range recs {
		body = appendRecord(body, r)
	}
	return x.write(shardName(b), shardMagic, body)
}

// appendRecord appends one record of a shard.
func appendRecord(body []byte, r indexRecord) []byte {
	body = append(body, r.term[:]...)
	body = binary.LittleEndian.AppendUint16(body, uint16(len(r.name)))
	return append(body, r.name...)
}

// lookup returns the sorted file names that q's terms and prefixes, and
// the problem term, lead to; ok is false when a shard is unreadable.
func (x *sourceIndex) lookup(q Query) (names []string, ok bool) {
	shards := map[int][]indexRecord{}
	get := func(b int) ([]indexRecord, bool) {
		if recs, done := shards[b]; done {
			return recs, true
		}
		recs, ok := x.shard(b)
		shards[b] = recs
		return recs, ok
	}
	// Each term once: a removal asks for the key of each entry it
	// removes, and 4,000 files holding one key asked for it 4,000 times,
	// 16 million names before the sort (docs/benchmarks.md, "Many of one
	// thing").
	terms := append(slices.Clone(q.Terms), problemTerm)
	slices.SortFunc(terms, func(a, b Term) int { return bytes.Compare(a[:], b[:]) })
	terms = slices.Compact(terms)
	for _, t := range terms {
		recs, ok := get(x.shardOf(t[:]))
		if !ok {
			return nil, false
		}
		for _, r := range recs {
			if r.term == t {
				names = append(names, r.name)
			}
		}
	}
	for _, p := range q.Prefixes {
		if len(p) < 2 {
			continue // not a key ID: every form names at least 30 bytes
		}
		recs, ok := get(x.shardOf(p))
		if !ok {
			return nil, false
		}
		for _, r := range recs {
			if bytes.HasPrefix(r.term[:], p) {
				names = append(names, r.name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), true
}

// rebuild writes every shard from the records recs yields, choosing the
// number of shards for them (x.bits, which the head written next
// records). Each record is kept only as its shard's bytes, by the first
// 16 bits of its term, as it comes: whatever the number of shards, a
// shard is a run of those (shardOf), joined once the records are
// counted. A million files' records held as a list, then as each
// shard's, with the Files they came from, were most of the peak of a
// first start at a million keys.
func (x *sourceIndex) rebuild(recs iter.Seq[indexRecord]) error {
	x.pending = nil // the records of a full load hold what the log says, and more recent
	if err := os.MkdirAll(x.dir, 0o700); err != nil {
		return err
	}
	// The head and its log go first: until the new head is written, a
	// crash or a failed write (a full disk) leaves no index, which is
	// stale, never the old head whose log a later read would apply over
	// the shards written here (the log's "gone" would hide a copy they
	// hold).
	for _, name := range []string{"head", "log"} {
		if err := os.Remove(filepath.Join(x.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	x.logSize, x.logBad = 0, false
	// A new generation before any record: whoever proved the index
	// before (a server deciding from it early) sees it is no longer the
	// one proved, whatever the timestamps' grain (generation).
	gen := make([]byte, 16)
	rand.Read(gen)
	if err := x.write("gen", genMagic, gen); err != nil {
		return err
	}
	runs := map[uint16][]byte{}
	n := 0
	for r := range recs {
		run := binary.BigEndian.Uint16(r.term[:])
		runs[run] = appendRecord(runs[run], r)
		n++
	}
	x.bits = shardBits(n)
	per := 1 << (16 - x.bits) // runs a shard
	var body []byte
	for b := range 1 << x.bits {
		body = body[:0]
		for run := b * per; run < (b+1)*per; run++ {
			body = append(body, runs[uint16(run)]...)
			delete(runs, uint16(run))
		}
		if err := x.write(shardName(b), shardMagic, body); err != nil {
			return err
		}
	}
	return nil
}

// update removes and adds records in the shards they fall in, and
// writes the log's changes into the shards (foldLog): the caller then
// writes the head, which drops the log — applied again to a shard that
// holds it, an entry of the log could undo a later change. Nothing to
// change changes nothing.
func (x *sourceIndex) update(gone, came []indexRecord) error {
	if len(gone)+len(came) == 0 {
		return nil
	}
	return x.foldLog(func(b int, recs []indexRecord) []indexRecord {
		return x.changed(b, recs, gone, came)
	}, slices.Concat(gone, came))
}

// changed is recs, the records of shard b, without those of gone and
// with those of came that fall in b, each once: a change as update and
// the log apply it. Sets, not searches of the lists: the records of
// skipped files share one term, so one shard, and a change of 30,000
// of them took minutes.
func (x *sourceIndex) changed(b int, recs, gone, came []indexRecord) []indexRecord {
	in := func(r indexRecord) bool { return x.shardOf(r.term[:]) == b }
	out := map[indexRecord]bool{}
	for _, r := range gone {
		if in(r) {
			out[r] = true
		}
	}
	if len(out) > 0 {
		recs = slices.DeleteFunc(recs, func(r indexRecord) bool { return out[r] })
	}
	var have map[indexRecord]bool
	for _, r := range came {
		if !in(r) {
			continue
		}
		if have == nil {
			have = make(map[indexRecord]bool, len(recs)+len(came))
			for _, h := range recs {
				have[h] = true
			}
		}
		if !have[r] {
			have[r] = true
			recs = append(recs, r)
		}
	}
	return recs
}
