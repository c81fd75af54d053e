package authkeys

import (
	"sync"
	"sync/atomic"

	"github.com/keytool/keytool/internal/keydir"
)

// madeEntries keeps the Entry made for each key a handshake decided
// (Decide), so that a client seen before is decided without allocating,
// while an item holds no pointer for the collector to read (item). It is
// the store's, not a snapshot's: an Entry is kept by the number its
// file has in the loader's snapshots (keydir.Snapshot.FileAt), which a
// file keeps from one snapshot to the next while it is unchanged, and
// checked against the number's generation (keydir.Snapshot.GenAt), so
// that a number given to another file never answers with the Entry of
// the file that had it before — by generation, not by *File, of which a
// file of one key has none of its own (docs/design.md, "Memory of
// a loaded store", step 5). Memory
// grows with the clients seen, not with the keys held: a page of 4,096
// file numbers (32 KiB) is made when a key of one of its files is first
// decided, and a file's places for Entries in chunks of the keys near
// the one decided (fileMade).
type madeEntries struct {
	mu    sync.Mutex                  // held to add pages
	pages atomic.Pointer[[]*madePage] // by file number >> madePageBits
	// numbered, if set, reports whether the current snapshot numbers a
	// file num of generation gen. A handshake deciding on an older snapshot may keep Entries
	// for a file the reload since has dropped (forget), which would
	// then hold the file's memory until its number is given again; the
	// store publishes a snapshot before it forgets the files gone, so a
	// handshake that keeps a file's Entries and then finds it not
	// numbered takes them back, and one that kept them before the
	// forget has them dropped by it.
	numbered func(num, gen uint32) bool
}

// madePageBits sets the size of a page of madeEntries: 4,096 file
// numbers (32 KiB of pointers, on the heap), its own, not the index's
// page size (pageBits): a page of Entries is made for the clients seen,
// and each the collector marks at every collection.
const (
	madePageBits = 12
	madePageLen  = 1 << madePageBits
)

type madePage [madePageLen]atomic.Pointer[fileMade]

// fileMade is the Entries made for the items of one file, by position:
// in one array for a small file, else in chunks of madeChunkLen made when
// a key of theirs is first decided, so that a client of a JWK Set of
// 100,000 keys costs a chunk (512 bytes) and the set an array of a
// pointer per chunk, not a pointer per key — memory the keys no client
// presents would hold, and that the collector would read at every
// collection.
type fileMade struct {
	gen    uint32                      // the generation of the file's number (keydir.Snapshot.GenAt)
	small  []atomic.Pointer[Entry]     // a file of at most madeChunkLen items
	chunks []atomic.Pointer[madeChunk] // a bigger file's
}

const (
	madeChunkBits = 6
	madeChunkLen  = 1 << madeChunkBits
)

type madeChunk [madeChunkLen]atomic.Pointer[Entry]

// newFileMade returns the places for the Entries of a file of n items,
// its number of generation gen.
func newFileMade(gen uint32, n int) *fileMade {
	if n > madeChunkLen {
		return &fileMade{gen: gen, chunks: make([]atomic.Pointer[madeChunk], (n+madeChunkLen-1)>>madeChunkBits)}
	}
	return &fileMade{gen: gen, small: make([]atomic.Pointer[Entry], n)}
}

// place returns where the Entry of the item at pos is kept, making its
// chunk if needed.
func (fm *fileMade) place(pos uint32) *atomic.Pointer[Entry] {
	if fm.chunks == nil {
		return &fm.small[pos]
	}
	c := &fm.chunks[pos>>madeChunkBits]
	chunk := c.Load()
	if chunk == nil {
		if fresh := new(madeChunk); c.CompareAndSwap(nil, fresh) {
			chunk = fresh
		} else {
			chunk = c.Load()
		}
	}
	return &chunk[pos&(madeChunkLen-1)]
}

// entry returns the Entry of the item files holds at r, making it the
// first time. It reads the file (keydir.FileRef) only to make an Entry:
// a client seen before costs its number's generation and a load.
func (m *madeEntries) entry(files *keydir.Snapshot[item], r ref) *Entry {
	num, gen, pos := r.file, files.GenAt(r.file), r.pos
	slot := m.slot(num)
	fm := slot.Load()
	if fm == nil || fm.gen != gen {
		// The number's first Entry, or the number was another file's.
		f, _ := files.RefAt(num)
		fresh := newFileMade(gen, f.Len())
		if slot.CompareAndSwap(fm, fresh) {
			fm = fresh
			if m.numbered != nil && !m.numbered(num, gen) {
				slot.CompareAndSwap(fresh, nil) // this handshake still has its Entry
			}
		} else if fm = slot.Load(); fm == nil || fm.gen != gen {
			// Handshakes on two snapshots that number two files alike
			// (during a reload): this one's Entry is not kept.
			return entryAt(files, r)
		}
	}
	p := fm.place(pos)
	if e := p.Load(); e != nil {
		return e
	}
	e := entryAt(files, r)
	if !p.CompareAndSwap(nil, e) {
		return p.Load()
	}
	return e
}

// entryAt is the entry of the key at r in files as a new Entry, kept
// by no one (entry keeps it; DecideOnce does not).
func entryAt(files *keydir.Snapshot[item], r ref) *Entry {
	f, _ := files.RefAt(r.file)
	return entryOf(f, int(r.pos))
}

// slot returns the place of file number num, adding its page if needed.
func (m *madeEntries) slot(num uint32) *atomic.Pointer[fileMade] {
	p := int(num >> madePageBits)
	if pages := m.pages.Load(); pages != nil && p < len(*pages) && (*pages)[p] != nil {
		return &(*pages)[p][num&(madePageLen-1)]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var pages []*madePage
	if cur := m.pages.Load(); cur != nil {
		pages = *cur
	}
	if p >= len(pages) || pages[p] == nil {
		grown := make([]*madePage, max(len(pages), p+1))
		copy(grown, pages)
		grown[p] = new(madePage)
		pages = grown
		m.pages.Store(&pages)
	}
	return &pages[p][num&(madePageLen-1)]
}

// forget drops the Entries of file number num (its file left the
// index), so that they do not keep the file's memory until the number is
// given again. The store calls it once the snapshot without the file is
// published (numbered).
func (m *madeEntries) forget(num uint32) {
	if pages := m.pages.Load(); pages != nil && int(num>>madePageBits) < len(*pages) {
		if page := (*pages)[num>>madePageBits]; page != nil {
			page[num&(madePageLen-1)].Store(nil)
		}
	}
}

// forgetAll drops every Entry (the index was rebuilt and its files
// numbered anew).
func (m *madeEntries) forgetAll() {
	m.mu.Lock() // else a page being added could put the old pages back
	defer m.mu.Unlock()
	m.pages.Store(nil)
}
