package keydir

import (
	"runtime"
	"slices"
	"sort"

	"github.com/keytool/keytool/internal/offheap"
)

// chunked is an immutable sorted list kept in chunks of at most chunkLen
// elements, which versions of the list share: an edit copies the list of
// chunks and the chunks it writes, never the whole list. The loader keeps
// each source's file rows in one, which its snapshots read too, so that a
// reload that changes one file of 100,000 costs a chunk of copying, not
// a list of 100,000 rows and the garbage collection it brings
// (docs/design.md, "From a file change to a handshake decision").
//
// An element is two parts: H, which may hold pointers and is kept on the
// heap, and D, which must not and is kept outside it (internal/offheap):
// a row's pointer to its rare part is H, its stamp, content sum and
// file's number D, so that the larger part of a row is resident once and
// never marked by the collector (docs/design.md, "Memory of a loaded
// store"). A chunk whose H parts are all zero keeps none (compact): a
// directory whose files have no rare part, most of them, keeps no
// pointer a row on the heap.
type chunked[H comparable, D any] struct {
	chunks []chunk[H, D] // none empty
	n      int
}

// chunk is one chunk of a list of n elements: h their heap parts (nil:
// all zero), and the first n values of d their D parts (d's Len is the
// chunk's room). The H parts are behind a pointer, 8 bytes in the header
// where a slice took 24: the list of headers is on the heap, and at a
// million rows a compact chunk's header was two fifths of what a chunk
// kept there (docs/benchmarks.md, "The collector at a million
// single-key files").
type chunk[H comparable, D any] struct {
	h *[]H // nil, or n long
	d *offheap.Array[D]
	n int
}

// hs returns ch's H parts, nil if it is compact.
func (ch chunk[H, D]) hs() []H {
	if ch.h == nil {
		return nil
	}
	return *ch.h
}

// chunkLen bounds a chunk: at 100,000 elements the list of chunks is
// some 25 headers, and a chunk 192 KiB of rows' stamps and sums. Each
// chunk keeps a header and an *offheap.Array on the heap, which the
// collector marks at every collection; and with the heap's goal at the
// runtime's 4 MB floor, each byte the store keeps live there is one the
// handshakes' garbage may not fill, so the collector runs more often:
// at 1,000,000 rows chunks of 512 kept 125 KB on the heap, 2,048 28 KB,
// 4,096 (with 24-byte headers) some 10 KB. A reload copies the chunk it
// writes: a reload of one changed file of 100,000 took 1.2× the CPU with
// chunks of 2,048 it took with chunks of 512, and chunks of 4,096 with
// the index's and numbers' larger pages 1.35–1.5× the time
// (docs/benchmarks.md, "The collector at a million single-key files").
const chunkLen = 4096

// chunksOf returns the list of n elements, element i being at(i).
func chunksOf[H comparable, D any](n int, at func(i int) (H, D)) chunked[H, D] {
	b := newBuilder[H, D](n)
	for i := range n {
		b.add(at(i))
	}
	return b.done()
}

// builder makes a list element by element, each chunk as it fills, of
// at most max elements (newBuilder): a listing that made a slice of its
// rows for chunksOf held them twice — 56 MB at a million files, live
// while every file was read, then the chunks made of it. Until done, an
// element added may be written in place (put).
type builder[H comparable, D any] struct {
	c    chunked[H, D]
	hs   []H               // the open chunk's H parts
	d    *offheap.Array[D] // its D parts; nil: no chunk open
	left int               // elements still to come, at most
}

// newBuilder returns a builder of a list of at most max elements: its
// chunks have room for chunkLen, or for what is left to come.
func newBuilder[H comparable, D any](max int) *builder[H, D] {
	return &builder[H, D]{left: max}
}

// add appends an element and returns its position.
func (b *builder[H, D]) add(h H, d D) at {
	if b.d == nil {
		room := max(1, min(chunkLen, b.left))
		b.hs, b.d = make([]H, 0, room), offheap.New[D](room)
	}
	k := len(b.hs)
	b.hs = append(b.hs, h)
	b.d.Set(k, d)
	b.left--
	p := at{len(b.c.chunks), k}
	if len(b.hs) == b.d.Len() {
		b.close()
	}
	return p
}

// close ends the open chunk, if any.
func (b *builder[H, D]) close() {
	if b.d == nil {
		return
	}
	hs := b.hs
	b.c.chunks = append(b.c.chunks, chunk[H, D]{h: &hs, d: b.d, n: len(hs)})
	b.c.n += len(hs)
	b.hs, b.d = nil, nil
}

// put writes the element at p, one add returned, in place.
func (b *builder[H, D]) put(p at, h H, d D) {
	if p.ci == len(b.c.chunks) {
		b.hs[p.i] = h
		b.d.Set(p.i, d)
		return
	}
	b.c.chunks[p.ci].put(p.i, h, d)
}

// done returns the list, each chunk compact if it can be.
func (b *builder[H, D]) done() chunked[H, D] {
	b.close()
	b.c.compact()
	return b.c
}

// len is the number of elements of ch.
func (ch chunk[H, D]) len() int { return ch.n }

// head returns the H part of element k.
func (ch chunk[H, D]) head(k int) H {
	if ch.h == nil {
		var zero H
		return zero
	}
	return (*ch.h)[k]
}

// data returns the D part of element k.
func (ch chunk[H, D]) data(k int) D { return ch.d.Get(k) }

// compact returns ch without its H parts if they are all zero.
func (ch chunk[H, D]) compact() chunk[H, D] {
	var zero H
	for _, h := range ch.hs() {
		if h != zero {
			return ch
		}
	}
	ch.h = nil
	return ch
}

// compact drops the H parts of every chunk whose H parts are all zero,
// writing the chunks' headers: only in a list whose list of chunks is the
// caller's own (chunksOf's, an editor's), before any other reads it. The
// chunks themselves are not written: an earlier version sharing one
// keeps reading it as it was.
func (c *chunked[H, D]) compact() {
	for i := range c.chunks {
		if c.chunks[i].h != nil {
			c.chunks[i] = c.chunks[i].compact()
		}
	}
}

// put writes element k in place: only into a chunk no other version of
// the list shares (one chunksOf or an editor made for the reload that
// writes it), and that keeps its H parts unless h is zero.
func (ch chunk[H, D]) put(k int, h H, d D) {
	var zero H
	switch {
	case ch.h != nil:
		(*ch.h)[k] = h
	case h != zero:
		panic("keydir: a row with pointers put in place into a compact chunk")
	}
	ch.d.Set(k, d)
}

// all yields the elements in order.
func (c chunked[H, D]) all(yield func(H, D) bool) {
	for _, ch := range c.chunks {
		for k := range ch.n {
			if !yield(ch.head(k), ch.d.Get(k)) {
				return
			}
		}
	}
}

// flat returns the elements in slices of their own.
func (c chunked[H, D]) flat() ([]H, []D) {
	hs, ds := make([]H, 0, c.n), make([]D, 0, c.n)
	for h, d := range c.all {
		hs, ds = append(hs, h), append(ds, d)
	}
	return hs, ds
}

// at is the position of an element: chunk ci, index i in it.
type at struct{ ci, i int }

// search finds where key is or would go: order(h, d) compares the
// element of parts h and d with the key (negative: it comes before).
func (c chunked[H, D]) search(order func(*H, D) int) (at, bool) {
	cmp := func(ch chunk[H, D], k int) int {
		h := ch.head(k)
		return order(&h, ch.d.Get(k))
	}
	// The first chunk whose last element is not before the key.
	ci, _ := slices.BinarySearchFunc(c.chunks, 0, func(ch chunk[H, D], _ int) int {
		if cmp(ch, ch.n-1) < 0 {
			return -1
		}
		return 1
	})
	if ci == len(c.chunks) {
		if ci == 0 {
			return at{}, false
		}
		ci--
		return at{ci, c.chunks[ci].n}, false
	}
	ch := c.chunks[ci]
	i := sort.Search(ch.n, func(m int) bool { return cmp(ch, m) >= 0 })
	return at{ci, i}, i < ch.n && cmp(ch, i) == 0
}

// get returns the element at p, which must be one.
func (c chunked[H, D]) get(p at) (H, D) {
	ch := c.chunks[p.ci]
	return ch.head(p.i), ch.d.Get(p.i)
}

// same reports whether c and o are one list: the same chunks. A list is
// never written once made, and an editor copies every chunk it changes
// into an array of its own while the list it started from is alive: the
// same arrays are the same elements (NextRevocations). A chunk copied
// unchanged (compact dropping its H parts) counts as another: a false
// "not the same" costs its caller a pass, never a wrong answer.
func (c chunked[H, D]) same(o chunked[H, D]) bool {
	if c.n != o.n || len(c.chunks) != len(o.chunks) {
		return false
	}
	for k := range c.chunks {
		x, y := c.chunks[k], o.chunks[k]
		if x.d != y.d || x.n != y.n || x.h != y.h {
			return false
		}
	}
	return true
}

// editor makes the next version of a list: it copies the list of chunks
// once, and a chunk the first time it writes to it; the list it started
// from is never written.
type editor[H comparable, D any] struct {
	c     chunked[H, D]
	owned map[*offheap.Array[D]]bool // the chunks it made or copied (by their D parts)
}

func (c chunked[H, D]) edit() *editor[H, D] {
	return &editor[H, D]{c: chunked[H, D]{chunks: slices.Clone(c.chunks), n: c.n}, owned: map[*offheap.Array[D]]bool{}}
}

// done returns the edited list; the editor must not be used again.
func (ed *editor[H, D]) done() chunked[H, D] { return ed.c }

// own makes chunk ci the editor's, copying it unless it already is, with
// room for one more element (up to chunkLen). A compact chunk stays so
// (its H parts all zero) until a part that is not zero is written
// (heads): a reload that changes a row of a directory whose rows have no
// rare part copies no H parts at all.
func (ed *editor[H, D]) own(ci int) chunk[H, D] {
	ch := ed.c.chunks[ci]
	if !ed.owned[ch.d] {
		var hs []H
		if ch.h != nil {
			hs = make([]H, ch.n, ch.n+1)
			copy(hs, *ch.h)
		}
		ch = ed.made(hs, ch.d, ch.n, min(chunkLen, ch.n+1))
		ed.c.chunks[ci] = ch
	}
	return ch
}

// heads returns chunk ci, the editor's, ready for h to be written to it:
// given H parts (all zero) if it was compact and h is not zero.
func (ed *editor[H, D]) heads(ci int, h H) chunk[H, D] {
	ch := ed.c.chunks[ci]
	var zero H
	if ch.h == nil && h != zero {
		hs := make([]H, ch.n, ch.d.Len())
		ch.h = &hs
		ed.c.chunks[ci] = ch
	}
	return ch
}

// made returns a chunk of the editor's of n elements: hs their H parts
// (nil: all zero) and the first n D parts of from, with room for room
// elements.
func (ed *editor[H, D]) made(hs []H, from *offheap.Array[D], n, room int) chunk[H, D] {
	d := offheap.New[D](room)
	if from != nil {
		copy(d.View(), from.View()[:n])
		runtime.KeepAlive(from)
		runtime.KeepAlive(d)
	}
	ed.owned[d] = true
	ch := chunk[H, D]{d: d, n: n}
	if hs != nil {
		ch.h = &hs
	}
	return ch
}

// set replaces the element at p.
func (ed *editor[H, D]) set(p at, h H, d D) {
	ed.own(p.ci)
	ed.heads(p.ci, h).put(p.i, h, d)
}

// insert puts an element at p (as search gives it), splitting a full
// chunk in two.
func (ed *editor[H, D]) insert(p at, h H, d D) {
	ed.c.n++
	if len(ed.c.chunks) == 0 {
		var (
			hs   []H // nil: compact, where h is zero
			zero H
		)
		if h != zero {
			hs = []H{h}
		}
		ch := ed.made(hs, nil, 1, 1)
		ch.d.Set(0, d)
		ed.c.chunks = []chunk[H, D]{ch}
		return
	}
	if ed.c.chunks[p.ci].n == chunkLen {
		ed.split(p.ci)
		if half := chunkLen / 2; p.i > half {
			p = at{p.ci + 1, p.i - half}
		}
	}
	ch := ed.own(p.ci)
	if ch.n == ch.d.Len() { // no room: grow it (by a quarter, up to chunkLen)
		ch = ed.made(ch.hs(), ch.d, ch.n, min(chunkLen, ch.n+ch.n/4+1))
		ed.c.chunks[p.ci] = ch
	}
	ch = ed.heads(p.ci, h)
	if ch.h != nil {
		*ch.h = slices.Insert(*ch.h, p.i, h)
	}
	ch.n++
	v := ch.d.View()
	copy(v[p.i+1:ch.n], v[p.i:ch.n-1])
	v[p.i] = d
	runtime.KeepAlive(ch.d)
	ed.c.chunks[p.ci] = ch
}

// split replaces full chunk ci by its two halves, both the editor's.
func (ed *editor[H, D]) split(ci int) {
	ch := ed.c.chunks[ci]
	half := ch.n / 2
	v := ch.d.View()
	heads := func(from, to int) []H { // nil if ch is compact
		if ch.h == nil {
			return nil
		}
		hs := make([]H, to-from, chunkLen)
		copy(hs, (*ch.h)[from:to])
		return hs
	}
	lo := ed.made(heads(0, half), ch.d, half, chunkLen)
	hi := ed.made(heads(half, ch.n), nil, ch.n-half, chunkLen)
	copy(hi.d.View(), v[half:ch.n])
	runtime.KeepAlive(ch.d)
	runtime.KeepAlive(hi.d)
	ed.c.chunks[ci] = lo
	ed.c.chunks = slices.Insert(ed.c.chunks, ci+1, hi)
}

// remove deletes the element at p, and its chunk if it was the last.
func (ed *editor[H, D]) remove(p at) {
	ed.c.n--
	if ed.c.chunks[p.ci].n == 1 {
		ed.c.chunks = slices.Delete(ed.c.chunks, p.ci, p.ci+1)
		return
	}
	ch := ed.own(p.ci)
	n := ch.n
	v := ch.d.View()
	copy(v[p.i:n-1], v[p.i+1:n])
	runtime.KeepAlive(ch.d)
	if ch.h != nil {
		*ch.h = slices.Delete(*ch.h, p.i, p.i+1)
	}
	ch.n--
	ed.c.chunks[p.ci] = ch
}
