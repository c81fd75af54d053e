package keydir

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/keytool/keytool/internal/atomicfile"
)

// The admin index's log (docs/design.md, "The admin index") holds what
// the commands changed since the head was written, so that a command
// records its change with one append instead of rewriting the shards its
// records fall in and the head (three to five files, each a new inode
// renamed in). Each entry moves the index from one stamp of the
// directory to the next (from, to) and says which records went and came;
// the index's stamp is the head's, followed along the entries whose from
// is the stamp so far. The log starts with the CRC of the head it
// follows: any write of the head (a rebuild, a check of the stamps, the
// log folded into the shards past IndexLogLimit) removes it, and a log of
// another head is not read. An entry that does not read back as written
// (a crash during an append: no fsync) ends the log there — torn, or NUL
// bytes where the file system kept the new size without the data (ext4's
// delayed allocation; no entry is all NULs: its length is at least 6 and
// its CRC that of its bytes), and nothing after it is read; the index is
// then stale for what it held, and brought up to date from the files'
// stamps, and the next change recorded folds the log away.
//
// Layout: magic, the head's CRC (4 bytes), then entries: the payload's
// length (4), the payload — from and to (a byte of length each, then the
// stamp), the records gone and the records come (2 bytes of count each,
// then records as in a shard) — and its CRC (4).

const logMagic = "keytool admin index log 1\n"

// IndexLogLimit is the size of the log past which a command folds it into
// the shards and writes the head instead of appending. (A variable for
// tests.)
var IndexLogLimit = 32 << 10

// logEntry is one command's change, as the log holds it.
type logEntry struct{ gone, came []indexRecord }

// readLog reads the log that follows the head whose stamp is stamp, and
// returns the index's stamp (the last entry's to); ok is false when the
// log fails the trust-file rule (the index is then stale).
func (x *sourceIndex) readLog(stamp []byte) ([]byte, bool) {
	x.pending, x.logSize, x.logBad = nil, 0, false
	data, _, err := x.d.ReadFile("log")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return stamp, true
	case err != nil:
		return nil, false
	}
	at := len(logMagic) + 4
	if len(data) < at || string(data[:len(logMagic)]) != logMagic || binary.LittleEndian.Uint32(data[len(logMagic):]) != x.headCRC {
		x.logBad = true // another head's: written anew by the next append
		return stamp, true
	}
	for at < len(data) {
		e, from, to, next, ok := parseLogEntry(data, at)
		if !ok || !bytes.Equal(from, stamp) {
			break
		}
		x.pending = append(x.pending, e)
		stamp, at = to, next
	}
	x.logSize, x.logBad = at, at < len(data)
	return stamp, true
}

// parseLogEntry parses the entry at offset at of data.
func parseLogEntry(data []byte, at int) (e logEntry, from, to []byte, next int, ok bool) {
	if len(data)-at < 8 {
		return e, nil, nil, 0, false
	}
	n := int(binary.LittleEndian.Uint32(data[at:]))
	if n < 6 || len(data)-at-8 < n {
		return e, nil, nil, 0, false
	}
	p := data[at+4 : at+4+n]
	if crc32.ChecksumIEEE(p) != binary.LittleEndian.Uint32(data[at+4+n:]) {
		return e, nil, nil, 0, false
	}
	if from, p, ok = cutStamp(p); !ok {
		return e, nil, nil, 0, false
	}
	if to, p, ok = cutStamp(p); !ok {
		return e, nil, nil, 0, false
	}
	if e.gone, p, ok = cutRecords(p); !ok {
		return e, nil, nil, 0, false
	}
	if e.came, p, ok = cutRecords(p); !ok || len(p) != 0 {
		return e, nil, nil, 0, false
	}
	return e, from, to, at + 8 + n, true
}

func cutStamp(p []byte) (stamp, rest []byte, ok bool) {
	if len(p) < 1 || len(p)-1 < int(p[0]) {
		return nil, nil, false
	}
	return p[1 : 1+int(p[0])], p[1+int(p[0]):], true
}

func cutRecords(p []byte) (recs []indexRecord, rest []byte, ok bool) {
	if len(p) < 2 {
		return nil, nil, false
	}
	count := int(binary.LittleEndian.Uint16(p))
	p = p[2:]
	for range count {
		if len(p) < 34 {
			return nil, nil, false
		}
		var r indexRecord
		copy(r.term[:], p)
		n := int(binary.LittleEndian.Uint16(p[32:]))
		if len(p) < 34+n {
			return nil, nil, false
		}
		r.name = string(p[34 : 34+n])
		if !listedName(r.name) {
			return nil, nil, false // never written so
		}
		recs = append(recs, r)
		p = p[34+n:]
	}
	return recs, p, true
}

// appendLogEntry appends the entry (from, to, gone, came) to b; nil when
// it does not fit the format (the change is then folded into the shards).
func appendLogEntry(b, from, to []byte, gone, came []indexRecord) []byte {
	if len(from) > 255 || len(to) > 255 || len(gone) > 0xffff || len(came) > 0xffff {
		return nil
	}
	p := append([]byte{byte(len(from))}, from...)
	p = append(append(p, byte(len(to))), to...)
	for _, recs := range [][]indexRecord{gone, came} {
		p = binary.LittleEndian.AppendUint16(p, uint16(len(recs)))
		for _, r := range recs {
			p = append(p, r.term[:]...)
			p = binary.LittleEndian.AppendUint16(p, uint16(len(r.name)))
			p = append(p, r.name...)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	b = append(b, p...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(p))
}

// applyLog applies the log's changes, in order, to the records of shard
// b.
func (x *sourceIndex) applyLog(b int, recs []indexRecord) []indexRecord {
	for _, e := range x.pending {
		recs = x.changed(b, recs, e.gone, e.came)
	}
	return recs
}

// foldLog writes the log's changes into the shards they fall in, each
// read once, and forgets them (the caller writes the head next, which
// drops the log); change, if not nil, changes the records of each shard
// touched, and of those of more, too.
func (x *sourceIndex) foldLog(change func(b int, recs []indexRecord) []indexRecord, more []indexRecord) error {
	touched := map[int]bool{}
	for _, e := range x.pending {
		more = slices.Concat(more, e.gone, e.came)
	}
	for _, r := range more {
		touched[x.shardOf(r.term[:])] = true
	}
	// The log goes before a shard holds its changes: a crash in between
	// leaves the index stale (the head's stamp, older than the
	// directory's), never a log applied again over a shard written after
	// it (docs/design.md, "The admin index").
	if len(x.pending) > 0 || x.logBad {
		if err := os.Remove(filepath.Join(x.dir, "log")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for b := range touched {
		recs, ok := x.shard(b)
		if !ok {
			return errors.New("keydir: index shard unreadable")
		}
		if change != nil {
			recs = change(b, recs)
		}
		if err := x.writeShard(b, recs); err != nil {
			return err
		}
	}
	x.pending = nil
	return nil
}

// record records a command's change (the records gone and come) that
// moved the directory from stamp from (the index's) to stamp to: one
// entry appended to the log or, past IndexLogLimit or when the log is not
// this head's, the log and the change folded into the shards and a new
// head. Called with the index locked, after head.
func (x *sourceIndex) record(from, to []byte, gone, came []indexRecord) error {
	entry := appendLogEntry(nil, from, to, gone, came)
	path := filepath.Join(x.dir, "log")
	switch {
	case entry == nil || x.logBad || x.logSize+len(entry) > IndexLogLimit:
		if err := x.update(gone, came); err != nil {
			return err
		}
		return x.writeHead(to)
	case x.logSize == 0:
		data := binary.LittleEndian.AppendUint32([]byte(logMagic), x.headCRC)
		return atomicfile.WriteLocked(path, append(data, entry...), 0o600)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(entry)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
