package authkeys

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// RevokeAll revokes each key as Revoke of each in turn would: a key
// already revoked gives its revocation's file, a key given twice its one
// file; and each revocation that cannot be written, or does not load,
// says so, while the keys beside it are revoked all the same.
func TestRevokeAllInOrder(t *testing.T) {
	home := t.TempDir()
	s := Load(HomeOptions(home))
	k1, k2, k3 := keydirtest.Key(t, 1), keydirtest.Key(t, 2), keydirtest.Key(t, 3)
	before, err := s.Revoke(k2)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := s.RevokeAll([]*jwk.Key{k1, k2, k3, k1})
	if err != nil || len(revs) != 4 || revs[1].File != before || revs[3].File != revs[0].File || revs[2].File == revs[0].File {
		t.Fatalf("RevokeAll = %v, %v (k2 revoked before in %s)", revs, err, before)
	}
	for i, r := range revs {
		if r.Err != nil || r.File == "" {
			t.Errorf("key %d: %+v", i, r)
		}
	}
	for _, k := range []*jwk.Key{k1, k2, k3} {
		if _, err := s.LookupKey(k, netip.Addr{}); err == nil {
			t.Errorf("%s not refused after RevokeAll", k.Fingerprint())
		}
	}

	// The files of k5's and k7's revocations cannot be written (a
	// directory is in each one's place): k4 and k6 are revoked, and each
	// of the two says why it is not, naming its file.
	k4, k5, k6, k7 := keydirtest.Key(t, 4), keydirtest.Key(t, 5), keydirtest.Key(t, 6), keydirtest.Key(t, 7)
	var blocked []string
	for _, k := range []*jwk.Key{k5, k7} {
		b := filepath.Join(home, "revoked_keys.d", strings.ReplaceAll(k.KeyID(), ":", "")+".json")
		if err := os.Mkdir(b, 0o755); err != nil {
			t.Fatal(err)
		}
		blocked = append(blocked, b)
	}
	revs, err = s.RevokeAll([]*jwk.Key{k4, k5, k6, k7})
	if err != nil || len(revs) != 4 || revs[0].File == "" || revs[2].File == "" || revs[0].Err != nil || revs[2].Err != nil {
		t.Fatalf("with k5's and k7's files blocked: RevokeAll = %+v, %v", revs, err)
	}
	for i, b := range blocked {
		if r := revs[2*i+1]; r.File != "" || r.Err == nil || !strings.Contains(r.Err.Error(), b) {
			t.Errorf("blocked key %d: %+v", i, r)
		}
	}
	for _, k := range []*jwk.Key{k4, k6} {
		if _, err := s.LookupKey(k, netip.Addr{}); err == nil {
			t.Errorf("%s, beside the blocked ones, not refused", k.Fingerprint())
		}
	}
	if file, err := s.Revoke(k5); file != "" || err == nil {
		t.Errorf("Revoke of a blocked key = %q, %v", file, err)
	}
}
