package authkeys

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// An index naming files that a listing of the directory would not load —
// outside it, or ignored in it — is stale: LoadFor never reads a file for
// an index that a full load would not read (docs/design.md, "The admin
// index": the index never grants).
func TestLoadForIndexNamesOnlyDirectoryEntries(t *testing.T) {
	for _, name := range []string{"../outside.json", ".hidden.json", "sub/nested.json"} {
		t.Run(name, func(t *testing.T) {
			opts := fillHome(t, 3)
			k9 := key(t, 9)
			keydirtest.Write(t, filepath.Join(opts.Dirs[0], name), keydirtest.JWK(t, k9))
			_, finish := LoadFor(opts, Lookups{}) // a full load, which makes the index
			finish()
			tamperIndex(t, opts.Index, k9.SPKIHash(), name)
			s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k9.SPKIHash()}})
			finish()
			if e, err := s.LookupKey(k9, netip.Addr{}); err == nil {
				t.Fatalf("an index record %q authorized a key from %s", name, e.File)
			}
		})
	}
}

// tamperIndex adds the record (sum, name) to the shard of sum in every
// source index under top, keeping the files' format and CRC.
func tamperIndex(t *testing.T, top string, sum [32]byte, name string) {
	t.Helper()
	const indexMagic, shardMagic = "keytool admin index 2\n", "keytool admin index shard 2\n"
	heads, _ := filepath.Glob(filepath.Join(top, "*", "head"))
	if len(heads) == 0 {
		t.Fatal("no index was made")
	}
	for _, head := range heads {
		h, err := os.ReadFile(head)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := bytes.Cut(h[len(indexMagic):], []byte{0})
		bits := int(rest[0])
		shard := filepath.Join(filepath.Dir(head), fmt.Sprintf("%04x", int(binary.BigEndian.Uint16(sum[:]))>>(16-bits)))
		data, err := os.ReadFile(shard)
		if err != nil {
			t.Fatal(err)
		}
		body := append(data[:len(data)-4:len(data)-4], sum[:]...)
		body = binary.LittleEndian.AppendUint16(body, uint16(len(name)))
		body = append(body, name...)
		body = binary.LittleEndian.AppendUint32(body, crc32.ChecksumIEEE(body))
		if !bytes.HasPrefix(body, []byte(shardMagic)) {
			t.Fatalf("%s: not a shard", shard)
		}
		if err := os.WriteFile(shard, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
