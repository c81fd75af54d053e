package keydir

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/trustfile"
)

// The directory's stamp says that it changed, not who changed it: an
// admin command that records its change in the admin index from the head
// it loaded to the stamp at its end would take in a file another writer
// (config management, a copy by hand, a server enrolling a client) added
// meanwhile, without its records (docs/design.md, "The admin index"). So
// while a LoadFor is open on a directory, this process's writes into it
// (CreateFile, CreateFiles, RemoveFile, writeFile: every write an admin
// command makes) are bracketed by the directory's stamp just before and
// just after: the change from the first write's "before" to the last
// one's "after", each "after" the next "before", is this process's
// alone, and finish records only that — from the head it loaded, if that
// is the first "before", to the last "after". A change by another
// between them (or before the first, after the load) breaks the chain,
// and the index is left stale; one after the last is the next command's
// to find from the files' stamps. A write through a temporary file
// (atomicfile) is bracketed around its changes of names alone: "before"
// the temporary file is made and once it is, again just before it is
// placed — the fill and its fsync between, milliseconds, in which the
// write changes no name, so that a change of the directory there is
// another's and breaks the chain — and "after" once it is placed and the
// temporary name gone, before the directory's fsync. (Until 2026-12-05
// one bracket spanned the whole write, both fsyncs among it, and a file
// another writer added in those milliseconds was taken in without its
// records; found by review.)

// ownWrites is the chain of this process's writes into one directory
// since a LoadFor opened it.
type ownWrites struct {
	first, last []byte // the directory's stamp before the first write, after the last
	writes      int    // the writes bracketed
	edits       int    // of them, those that are not this process's making of the directory's lock file (lockName)
	broken      bool   // a write's "before" was not the last "after", or a stamp was not had
}

var bracketed struct {
	sync.Mutex
	open map[string][]*ownWrites // by the directory's absolute path
}

// watchWrites opens a chain on the directory dir until the returned
// close.
func watchWrites(dir string) (*ownWrites, func()) {
	w := &ownWrites{}
	dir = absPath(dir)
	bracketed.Lock()
	defer bracketed.Unlock()
	if bracketed.open == nil {
		bracketed.open = map[string][]*ownWrites{}
	}
	bracketed.open[dir] = append(bracketed.open[dir], w)
	return w, func() {
		bracketed.Lock()
		defer bracketed.Unlock()
		ws := bracketed.open[dir]
		for i := range ws {
			if ws[i] == w {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(bracketed.open, dir)
		} else {
			bracketed.open[dir] = ws
		}
	}
}

// lockName is the file in a directory whose flock(2) serialises
// keytool's writers of the directory (lockDir). A dotfile: the loader,
// the admin index and every listing skip it (Ignored).
const lockName = ".keytool.lock"

// dirStamp is the stamp of directory dir as the admin index records it
// (sourceIndex.stamp); nil if it cannot be stat'ed.
func dirStamp(dir string) []byte {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	b, _ := trustfile.StampOf(fi).AppendBinary(nil)
	return b
}

// bracket runs write, a write of the file path, between two stamps of
// its directory when a LoadFor watches the directory, and adds them to
// each chain open on it. A write through a temporary file calls at with
// atomicfile's steps (WriteSteps): the directory is stamped at each, the
// stamps once the temporary file is made and once it is filled (for a
// single write, just before it is placed; for CreateAll's, before their
// data is synced together and each placed in a change of its own) must
// be the same, and "after" is the one once it is placed, or filled.
// Writes of one process are bracketed one at a time; a process that
// watches nothing (a server) pays nothing.
func bracket(path string, write func(at func(step string)) error) error {
	dir := absPath(filepath.Dir(path))
	bracketed.Lock()
	ws := bracketed.open[dir]
	if len(ws) == 0 {
		bracketed.Unlock()
		return write(func(string) {})
	}
	defer bracketed.Unlock()
	var made, filled, placed []byte
	stepped := false
	before := dirStamp(dir)
	err := write(func(step string) {
		stepped = true
		switch step {
		case atomicfile.StepCreated:
			made = dirStamp(dir)
		case atomicfile.StepFilled:
			filled = dirStamp(dir)
		case atomicfile.StepPlaced:
			placed = dirStamp(dir)
		}
	})
	after := placed
	if after == nil {
		after = dirStamp(dir) // not placed (the temporary file removed since), or no steps
	}
	// Between the temporary file's making and its placing the write
	// changed no name: a change there is another writer's (or the write
	// failed there).
	foreign := stepped && (made == nil || !bytes.Equal(made, filled))
	for _, w := range ws {
		switch {
		case before == nil || after == nil || foreign:
			w.broken = true
		case w.writes == 0:
			w.first = before
		case !bytes.Equal(w.last, before):
			w.broken = true
		}
		w.last, w.writes = after, w.writes+1
		if filepath.Base(path) != lockName || err != nil {
			w.edits++ // a lock file another made meanwhile (EEXIST) is not one's own
		}
	}
	return err
}

// restart begins the chain anew, from the next write: the index was
// proved complete for the directory as it is now (verify wrote its head
// at the directory's stamp), so the writes before are in it, and finish
// records only those after, from that head. (Before, a removal that
// wrote before its proof — enforce first — and after it left the index
// stale: the chain began before the head the proof wrote; review of
// 9fcc5b4.)
func (w *ownWrites) restart() {
	if w == nil {
		return
	}
	bracketed.Lock()
	defer bracketed.Unlock()
	*w = ownWrites{}
}

// lockOnly reports whether the change of the directory from stamp from
// to stamp to is this process's making of its lock file alone: a file
// no load reads (Ignored).
func (w *ownWrites) lockOnly(from, to []byte) bool {
	if w == nil {
		return false
	}
	bracketed.Lock()
	defer bracketed.Unlock()
	return !w.broken && w.writes > 0 && w.edits == 0 && bytes.Equal(w.first, from) && bytes.Equal(w.last, to)
}
