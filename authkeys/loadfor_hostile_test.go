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

// The index's files are trust inputs read through the trust-file rule
// (docs/design.md, "The admin index"): an index file that is a symbolic
// link (even to a faithful copy), that others may write, or in a
// directory others may write, is not used — the load reads every file,
// and rebuilds the index.
func TestLoadForIndexFilesFollowTheRule(t *testing.T) {
	for _, spoil := range []string{"link", "file mode", "directory mode"} {
		t.Run(spoil, func(t *testing.T) {
			opts := fillHome(t, 20)
			q := Lookups{Keys: [][32]byte{key(t, 3).SPKIHash()}}
			_, finish := LoadFor(opts, q) // makes the index
			finish()
			heads, _ := filepath.Glob(filepath.Join(opts.Index, "*", "head"))
			if len(heads) == 0 {
				t.Fatal("no index was made")
			}
			for _, head := range heads {
				switch spoil {
				case "link":
					copied := filepath.Join(opts.Index, "head-copy")
					data, err := os.ReadFile(head)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(copied, data, 0o600); err != nil {
						t.Fatal(err)
					}
					os.Remove(head)
					if err := os.Symlink(copied, head); err != nil {
						t.Fatal(err)
					}
				case "file mode":
					if err := os.Chmod(head, 0o622); err != nil {
						t.Fatal(err)
					}
				case "directory mode":
					if err := os.Chmod(filepath.Dir(head), 0o777); err != nil {
						t.Fatal(err)
					}
				}
			}
			s, finish := LoadFor(opts, q)
			finish()
			if n := loadedFiles(s); n != 20 {
				t.Fatalf("LoadFor with an index file that fails the rule (%s) read %d files, want all 20", spoil, n)
			}
		})
	}
}
