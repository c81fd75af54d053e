package etcd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// Each problem the stores report of a Source's entries is one line,
// whatever the key's bytes (a newline, a terminal's escape): a value over
// the bound under a key holding them is reported quoted, as a key outside
// the prefix is (OutsideKeyError). Before, TooLargeError put the key's
// bytes in its message as they were: a second line, forged.
func TestProblemsOneLine(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	huge := append(keyJSON(t, keydirtest.Key(t, 1)), bytes.Repeat([]byte(" "), DefaultMaxValue)...)
	put(t, cli, Key(prefix, Authorized, "a\nlevel=INFO msg=\"all fine\""), huge)
	put(t, cli, Key(prefix, Revoked, "b\x1b[2K"), huge)
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix})
	store := authkeys.Load(src.AuthorizedOptions())
	ps := store.Problems()
	if len(ps) != 2 {
		t.Fatalf("problems %v, want two", ps)
	}
	for _, p := range ps {
		if msg := p.Error(); strings.ContainsAny(msg, "\n\x1b") {
			t.Errorf("problem not one line of text: %q", msg)
		}
	}
}
