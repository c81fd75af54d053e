package keydir

import "testing"

// A check walks a stamp file along the listing: an unchanged directory
// meets every record at its place (no map, nothing to write); a new file
// is looked up and leaves the order; a file gone, or a listing in
// another order, has the stamp file written again.
func TestStampFileWalk(t *testing.T) {
	var body []byte
	for _, n := range []string{"c", "a", "b"} {
		body = appendStampRecord(body, n, "stamp-"+n)
	}
	walk := func(names ...string) (*stampFile, map[string]string) {
		sf := &stampFile{body: string(body)}
		got := map[string]string{}
		for _, n := range names {
			if st, ok := sf.stamp(n); ok {
				got[n] = st
			}
		}
		return sf, got
	}
	for _, tc := range []struct {
		name      string
		listing   []string
		found     int
		done, out bool
		mapped    bool
	}{
		{"unchanged", []string{"c", "a", "b"}, 3, true, false, false},
		{"a new file", []string{"c", "new", "a", "b"}, 3, true, false, true},
		{"a file gone", []string{"c", "b"}, 2, false, true, true},
		{"another order", []string{"a", "b", "c"}, 3, false, true, true},
	} {
		sf, got := walk(tc.listing...)
		if len(got) != tc.found || sf.done() != tc.done || sf.out != tc.out || (sf.m != nil) != tc.mapped {
			t.Errorf("%s: found %d, done %v, out %v, map %v; want %d, %v, %v, %v",
				tc.name, len(got), sf.done(), sf.out, sf.m != nil, tc.found, tc.done, tc.out, tc.mapped)
		}
		for n, st := range got {
			if st != "stamp-"+n {
				t.Errorf("%s: stamp of %s is %q", tc.name, n, st)
			}
		}
	}
}
