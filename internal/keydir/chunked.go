package keydir

import "slices"

// chunked is an immutable sorted list kept in chunks of at most chunkLen
// elements, which versions of the list share: an edit copies the list of
// chunks and the chunks it writes, never the whole list. The loader keeps
// each source's file rows in one, which its snapshots read too, so that a
// reload that changes one file of 100,000 costs a chunk of copying, not
// a list of 100,000 rows and the garbage collection it brings
// (docs/design.md, "From a file change to a handshake decision").
type chunked[E any] struct {
	chunks [][]E // none empty
	n      int
}

// chunkLen bounds a chunk: at 100,000 elements the list of chunks is
// some 200 slice headers, and a chunk 32 KiB of rows.
const chunkLen = 512

// chunksOf returns the list of the elements of s, which must not be
// written afterwards (the chunks share its array).
func chunksOf[E any](s []E) chunked[E] {
	c := chunked[E]{n: len(s), chunks: make([][]E, 0, (len(s)+chunkLen-1)/chunkLen)}
	for len(s) > 0 {
		k := min(len(s), chunkLen)
		c.chunks = append(c.chunks, s[:k:k])
		s = s[k:]
	}
	return c
}

// all yields the elements in order.
func (c chunked[E]) all(yield func(E) bool) {
	for _, ch := range c.chunks {
		for _, e := range ch {
			if !yield(e) {
				return
			}
		}
	}
}

// flat returns the elements in a slice of their own.
func (c chunked[E]) flat() []E {
	out := make([]E, 0, c.n)
	for _, ch := range c.chunks {
		out = append(out, ch...)
	}
	return out
}

// at is the position of an element: chunk ci, index i in it.
type at struct{ ci, i int }

// search finds where key is or would go: order(e) compares element e
// with the key (negative: e comes before it).
func (c chunked[E]) search(order func(E) int) (at, bool) {
	// The first chunk whose last element is not before the key.
	ci, _ := slices.BinarySearchFunc(c.chunks, 0, func(ch []E, _ int) int {
		if order(ch[len(ch)-1]) < 0 {
			return -1
		}
		return 1
	})
	if ci == len(c.chunks) {
		if ci == 0 {
			return at{}, false
		}
		ci--
		return at{ci, len(c.chunks[ci])}, false
	}
	i, found := slices.BinarySearchFunc(c.chunks[ci], 0, func(e E, _ int) int { return order(e) })
	return at{ci, i}, found
}

// get returns the element at p, which must be one.
func (c chunked[E]) get(p at) E { return c.chunks[p.ci][p.i] }

// editor makes the next version of a list: it copies the list of chunks
// once, and a chunk the first time it writes to it; the list it started
// from is never written.
type editor[E any] struct {
	c     chunked[E]
	owned map[*E]bool // the chunks it copied (by their first element)
}

func (c chunked[E]) edit() *editor[E] {
	return &editor[E]{c: chunked[E]{chunks: slices.Clone(c.chunks), n: c.n}, owned: map[*E]bool{}}
}

// done returns the edited list; the editor must not be used again.
func (ed *editor[E]) done() chunked[E] { return ed.c }

// own makes chunk ci the editor's, copying it (with room for one more
// element) unless it already is.
func (ed *editor[E]) own(ci int) []E {
	ch := ed.c.chunks[ci]
	if !ed.owned[&ch[0]] {
		ch = append(make([]E, 0, len(ch)+1), ch...)
		ed.c.chunks[ci] = ch
		ed.owned[&ch[0]] = true
	}
	return ch
}

// set replaces the element at p.
func (ed *editor[E]) set(p at, e E) { ed.own(p.ci)[p.i] = e }

// insert puts e at p (as search gives it), splitting a chunk that grows
// past chunkLen.
func (ed *editor[E]) insert(p at, e E) {
	ed.c.n++
	if len(ed.c.chunks) == 0 {
		ch := []E{e}
		ed.c.chunks = [][]E{ch}
		ed.owned[&ch[0]] = true
		return
	}
	ch := slices.Insert(ed.own(p.ci), p.i, e)
	ed.owned[&ch[0]] = true // Insert may have moved it
	if len(ch) <= chunkLen {
		ed.c.chunks[p.ci] = ch
		return
	}
	half := len(ch) / 2
	lo := ch[:half:half]
	hi := append(make([]E, 0, chunkLen), ch[half:]...)
	ed.owned[&hi[0]] = true
	ed.c.chunks[p.ci] = lo
	ed.c.chunks = slices.Insert(ed.c.chunks, p.ci+1, hi)
}

// remove deletes the element at p, and its chunk if it was the last.
func (ed *editor[E]) remove(p at) {
	ed.c.n--
	if len(ed.c.chunks[p.ci]) == 1 {
		ed.c.chunks = slices.Delete(ed.c.chunks, p.ci, p.ci+1)
		return
	}
	ch := ed.own(p.ci)
	ed.c.chunks[p.ci] = slices.Delete(ch, p.i, p.i+1)
}
