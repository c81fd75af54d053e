// Package keydirtest makes keys and key files for the trust stores' tests
// and benchmarks: deterministic Ed25519 keys (fast to make by the million)
// and files in every format jwk reads.
package keydirtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/keytool/keytool/jwk"
)

// Key returns the deterministic public Ed25519 key number n.
func Key(tb testing.TB, n int) *jwk.Key {
	tb.Helper()
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(n)+1)
	seed = sha256.Sum256(seed[:])
	k, err := jwk.NewPublicKey(ed25519.NewKeyFromSeed(seed[:]).Public())
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// WithAttrs returns k with string attributes set (name, value, …).
func WithAttrs(k *jwk.Key, kv ...string) *jwk.Key {
	k = k.PublicKey()
	if k.Attrs == nil {
		k.Attrs = jwk.Attributes{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k.Attrs.SetString(kv[i], kv[i+1])
	}
	return k
}

// JWK encodes one key as a JWK, or several as a JWK Set.
func JWK(tb testing.TB, keys ...*jwk.Key) []byte {
	tb.Helper()
	var (
		b   []byte
		err error
	)
	if len(keys) == 1 {
		b, err = keys[0].MarshalPublic(jwk.JWK)
	} else {
		b, err = jwk.MarshalPublicSet(keys, jwk.JWK)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// PEM encodes keys as a PEM bundle.
func PEM(tb testing.TB, keys ...*jwk.Key) []byte {
	tb.Helper()
	b, err := jwk.MarshalPublicSet(keys, jwk.PEM)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// SSH encodes keys as OpenSSH authorized_keys lines.
func SSH(tb testing.TB, keys ...*jwk.Key) []byte {
	tb.Helper()
	var out []byte
	for _, k := range keys {
		pk, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, ssh.MarshalAuthorizedKey(pk)...)
	}
	return out
}

// Write writes data to path (mode 0644), creating parent directories.
func Write(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// WriteInPlace rewrites the existing file path with data without changing
// its directory (truncate and write, as a shell's > does): the directory's
// stamp stays as it was, which the test checks.
func WriteInPlace(tb testing.TB, path string, data []byte) {
	tb.Helper()
	before, err := os.Stat(filepath.Dir(path))
	if err != nil {
		tb.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	if after, err := os.Stat(filepath.Dir(path)); err != nil || !after.ModTime().Equal(before.ModTime()) {
		tb.Fatal("the directory changed: not an in-place edit")
	}
}

// Put writes data to path (mode 0644) atomically, creating parent
// directories: a dot-file beside it (which loaders ignore) renamed over
// it, as keytool's own writes do, so that a watching loader never reads
// it half-written — Write's truncate-then-write can be read empty, and a
// revocation file read empty fails closed.
func Put(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// Replace writes data to a temporary file beside path and renames it over
// path, as vim, sed -i and config management do.
func Replace(tb testing.TB, path string, data []byte) {
	tb.Helper()
	// sed's temporary: "sed" and six random characters, no extension.
	tmp := filepath.Join(filepath.Dir(path), "sed"+fmt.Sprintf("%06x", crc32.ChecksumIEEE([]byte(path))&0xffffff))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// Repeat calls f over and over on n goroutines until the returned stop is
// called; stop returns once every goroutine has. Tests run it beside a
// store's reloads, so that the race detector sees anything a reload writes
// while handshakes read.
func Repeat(n int, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
					f()
				}
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// IndexLeftStale reports whether a log of the admin index in directory
// index (HOME/.index) holds an entry to the stamp of no directory
// (keydir's staleStamp, "stale", written after its length byte): a
// command could not record its change, and the next one stats every
// file.
func IndexLeftStale(tb testing.TB, index string) bool {
	tb.Helper()
	logs, err := filepath.Glob(filepath.Join(index, "*", "log"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.Contains(data, []byte("\x05stale")) {
			return true
		}
	}
	return false
}
