package knownhosts

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A host key pinned with "use":"enc" or a key_ops without "verify" pins
// nothing: the file is a problem naming the member, the host's key is not
// accepted, and, as for any skipped trust, an address is then not unknown
// but refused (docs/design.md, "Skipped trust never widens trust").
func TestHostKeyForEncryptionPinsNothing(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	enc := pinned(t, 1, "enc.example")
	enc.Attrs["use"] = []byte(`"enc"`)
	signOnly := pinned(t, 2, "signonly.example")
	signOnly.Attrs["key_ops"] = []byte(`["sign"]`)
	ok := pinned(t, 3, "ok.example")
	ok.Attrs["key_ops"] = []byte(`["verify"]`)
	ok.Attrs["use"] = []byte(`"sig"`)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "enc.json"), keydirtest.JWK(t, enc))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "signonly.json"), keydirtest.JWK(t, signOnly))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "ok.json"), keydirtest.JWK(t, ok))
	s := Load(opts)
	problems := s.Problems()
	if len(problems) != 2 {
		t.Fatalf("problems %v, want enc.json's and signonly.json's", problems)
	}
	for _, p := range problems {
		var ue *jwk.UseError
		want := map[string]string{"enc.json": "use", "signonly.json": "key_ops"}[filepath.Base(p.Path)]
		if !errors.As(p.Err, &ue) || p.Member != want {
			t.Errorf("problem %v, want a *jwk.UseError on %q", p, want)
		}
	}
	if err := s.Check("ok.example:1", key(t, 3)); err != nil {
		t.Fatal(err)
	}
	for addr, k := range map[string]*jwk.Key{"enc.example:1": key(t, 1), "signonly.example:1": key(t, 2)} {
		var skipped *SkippedFilesError
		if err := s.Check(addr, k); !errors.As(err, &skipped) {
			t.Errorf("%s: %v, want a *SkippedFilesError", addr, err)
		}
	}
}
