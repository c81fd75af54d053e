package keydir

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// badKey is a JWK Set member that does not parse: its x is not base64url.
const badKey = `{"kty": "OKP", "crv": "Ed25519", "x": "!!"}`

// setWithBadMiddle is a JWK Set of key(n1), a bad member, and key(n3).
func setWithBadMiddle(t *testing.T, n1, n3 int) []byte {
	t.Helper()
	return slices.Concat([]byte(`{"keys": [`), keydirtest.JWK(t, key(t, n1)), []byte(",\n"+badKey+",\n"), keydirtest.JWK(t, key(t, n3)), []byte("]}\n"))
}

// A file of trust with one bad key among three: the two good keys load,
// the bad one is a Problem of its own naming keys[1]; rewriting the file
// good clears the problem and loads the third key.
func TestSetWithOneBadKeyLoadsTheOthers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authorized_keys.json")
	keydirtest.Write(t, path, setWithBadMiddle(t, 1, 2))
	if _, err := jwk.Parse(setWithBadMiddle(t, 1, 2)); err == nil {
		t.Fatal("the test set is not bad")
	}
	l := newLoader(Source{Path: path})
	s := l.Reload()
	if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 1), key(t, 2))) {
		t.Fatalf("loaded %v, want keys 1 and 2", got)
	}
	if len(s.Problems) != 1 {
		t.Fatalf("problems %v, want one", s.Problems)
	}
	p := s.Problems[0]
	if p.Path != path || p.Member != "keys[1].x" || !p.Entry || p.Revocation || p.Line == 0 || !strings.Contains(p.Error(), "base64url") {
		t.Fatalf("problem %+v (%v), want %s, member keys[1].x, an entry, a line", p, p, path)
	}
	if s.RevocationErr != nil {
		t.Fatalf("RevocationErr %v", s.RevocationErr)
	}
	// A rescan of the unchanged file keeps reporting it.
	if s := l.Reload(); len(s.Problems) != 1 || len(fingerprints(s)) != 2 {
		t.Fatalf("after a rescan: %v, %v", fingerprints(s), s.Problems)
	}
	keydirtest.Replace(t, path, keydirtest.JWK(t, key(t, 1), key(t, 3), key(t, 2)))
	s = l.Reload()
	if got := fingerprints(s); len(s.Problems) != 0 || !slices.Equal(got, want(t, key(t, 1), key(t, 2), key(t, 3))) {
		t.Fatalf("fixed: loaded %v, problems %v", got, s.Problems)
	}
}

// A PEM bundle with a bad block: the bad block is named by its line.
func TestPEMBundleWithOneBadBlock(t *testing.T) {
	dir := t.TempDir()
	bad := "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
	first := keydirtest.PEM(t, key(t, 1))
	data := slices.Concat(first, []byte(bad), keydirtest.PEM(t, key(t, 2)))
	keydirtest.Write(t, filepath.Join(dir, "keys.pem"), data)
	s := newLoader(Source{Path: dir, Dir: true}).Reload()
	if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 1), key(t, 2))) {
		t.Fatalf("loaded %v", got)
	}
	line := bytes.Count(first, []byte{'\n'}) + 1
	if len(s.Problems) != 1 || s.Problems[0].Line != line || !s.Problems[0].Entry {
		t.Fatalf("problems %+v, want one entry on line %d", s.Problems, line)
	}
}

// A key that parses but does not convert (a host key without an address)
// is skipped as an entry too, named by its member in a set.
func TestConvertErrorSkipsOnlyTheEntry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "set.json")
	keydirtest.Write(t, path, keydirtest.JWK(t, key(t, 1), key(t, 2), key(t, 3)))
	bad := key(t, 3).Fingerprint()
	s := Load(Config[string]{Sources: []Source{{Path: path}}, Convert: func(_ SourceRef, _ string, k *jwk.Key) (string, error) {
		if k.Fingerprint() == bad {
			return "", &jwk.ParseError{Member: jwk.AttrAddress, Err: errors.New("no address")}
		}
		return k.Fingerprint(), nil
	}})
	if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 1), key(t, 2))) {
		t.Fatalf("loaded %v", got)
	}
	if len(s.Problems) != 1 || s.Problems[0].Member != "keys[2].address" || !s.Problems[0].Entry {
		t.Fatalf("problems %+v", s.Problems)
	}
}

// A revocation file is read whole: one bad key in it is a problem of the
// file, none of its keys is used, and RevocationErr refuses everyone.
func TestRevocationSetWithOneBadKeyFailsClosed(t *testing.T) {
	dir := t.TempDir()
	rev := filepath.Join(dir, "revoked_keys.json")
	keydirtest.Write(t, rev, setWithBadMiddle(t, 1, 2))
	trusted := filepath.Join(dir, "authorized_keys.json")
	keydirtest.Write(t, trusted, setWithBadMiddle(t, 3, 4))
	s := newLoader(Source{Path: trusted}, Source{Path: rev, Revocation: true}).Reload()
	var p Problem
	if !errors.As(s.RevocationErr, &p) || p.Path != rev || p.Entry || !p.Revocation || p.Member != "keys[1].x" {
		t.Fatalf("RevocationErr %v, want the revocation file as a whole", s.RevocationErr)
	}
	for _, f := range s.Files() {
		if f.Path() == rev {
			t.Fatalf("the revocation file loaded %v", f.Items())
		}
	}
	// The file of trust beside it loaded its good keys.
	if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 3), key(t, 4))) {
		t.Fatalf("loaded %v", got)
	}
}
