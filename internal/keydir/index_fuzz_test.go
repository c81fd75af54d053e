package keydir

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
)

// FuzzIndexFiles: any head, shard and stamp file bytes — with the right
// magic and CRC, so that the parser behind the checks is reached — are
// refused or give file names a directory listing would load; nothing
// panics.
func FuzzIndexFiles(f *testing.F) {
	f.Add([]byte("/src\x00\x04\x00"), []byte{}, []byte{})
	f.Add([]byte("/src\x00\x10\x00stamp"), append(make([]byte, 32), 5, 0, 'a', '.', 'j', 's', 'n'), appendStampRecord(nil, "a.json", "stamp"))
	f.Add([]byte("/src\x00\x00\x01"), append(make([]byte, 32), 6, 0, '.', '.', '/', 'e', 't', 'c'), appendStampRecord(nil, "../etc", ""))
	f.Add([]byte("/src\x00\x00\x00"), []byte{}, []byte{9, 0, 3, 'a'})
	f.Fuzz(func(t *testing.T, head, shard, stamps []byte) {
		top := t.TempDir()
		x := newSourceIndex(top, "/src", trustfile.Rule{Off: true})
		defer x.close() // one process runs every input: a descriptor left open per input runs out
		if err := os.MkdirAll(x.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		put := func(name, magic string, body []byte) {
			data := append([]byte(magic), body...)
			data = binary.LittleEndian.AppendUint32(data, crc32.ChecksumIEEE(data))
			if err := os.WriteFile(filepath.Join(x.dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		put("head", indexMagic, head)
		if x.head() == nil {
			return
		}
		if x.sbits == 0 {
			put(stampFileName(0), stampMagic, stamps)
			if recorded, ok := x.readStamps(); ok {
				for _, name := range []string{"a.json", "b", "a.json"} {
					if _, ok := recorded[0].stamp(name); ok && !listedName(name) {
						t.Fatalf("a stamp for %q", name)
					}
				}
				recorded[0].done()
			}
		}
		for b := range 1 << x.bits {
			if b > 4 {
				break
			}
			put(shardName(b), shardMagic, shard)
		}
		var term Term
		names, ok := x.lookup(Query{Terms: []Term{term}, Prefixes: [][]byte{{0, 0}, {0}}})
		if !ok {
			return
		}
		for _, n := range names {
			if !listedName(n) {
				t.Fatalf("the index gave %q", n)
			}
		}
	})
}

// FuzzIndexLog: the log's entries parse without panicking whatever the
// bytes, only names a listing would load come out of them, and an entry
// reads back as written.
func FuzzIndexLog(f *testing.F) {
	var term Term
	f.Add(appendLogEntry(nil, []byte("from"), []byte("to"), []indexRecord{{term, "a.json"}}, []indexRecord{{term, "b.json"}}))
	f.Add(appendLogEntry(nil, nil, nil, nil, nil))
	f.Add([]byte{6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for at := 0; at < len(data); {
			e, from, to, next, ok := parseLogEntry(data, at)
			if !ok {
				break
			}
			if next <= at {
				t.Fatalf("entry at %d ends at %d", at, next)
			}
			for _, r := range slices.Concat(e.gone, e.came) {
				if !listedName(r.name) {
					t.Fatalf("the log gave %q", r.name)
				}
			}
			again := appendLogEntry(nil, from, to, e.gone, e.came)
			if string(again) != string(data[at:next]) {
				t.Fatalf("entry at %d does not read back as written", at)
			}
			at = next
		}
	})
}
