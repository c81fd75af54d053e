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
// file; and a revocation that does not load gives no file and an error
// naming it, while the keys beside it are revoked all the same.
func TestRevokeAllInOrder(t *testing.T) {
	home := t.TempDir()
	s := Load(HomeOptions(home))
	k1, k2, k3 := keydirtest.Key(t, 1), keydirtest.Key(t, 2), keydirtest.Key(t, 3)
	before, err := s.Revoke(k2)
	if err != nil {
		t.Fatal(err)
	}
	files, err := s.RevokeAll([]*jwk.Key{k1, k2, k3, k1})
	if err != nil || len(files) != 4 || files[1] != before || files[3] != files[0] || files[2] == files[0] {
		t.Fatalf("RevokeAll = %v, %v (k2 revoked before in %s)", files, err, before)
	}
	for _, k := range []*jwk.Key{k1, k2, k3} {
		if _, err := s.LookupKey(k, netip.Addr{}); err == nil {
			t.Errorf("%s not refused after RevokeAll", k.Fingerprint())
		}
	}

	// The file of k5's revocation cannot be written (a directory is in
	// its place): k4 and k6 are revoked, and the error names k5's file.
	k4, k5, k6 := keydirtest.Key(t, 4), keydirtest.Key(t, 5), keydirtest.Key(t, 6)
	blocked := filepath.Join(home, "revoked_keys.d", strings.ReplaceAll(k5.KeyID(), ":", "")+".json")
	if err := os.Mkdir(blocked, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err = s.RevokeAll([]*jwk.Key{k4, k5, k6})
	if err == nil || len(files) != 3 || files[0] == "" || files[1] != "" || files[2] == "" || !strings.Contains(err.Error(), blocked) {
		t.Fatalf("with k5's file blocked: RevokeAll = %q, %v", files, err)
	}
	for _, k := range []*jwk.Key{k4, k6} {
		if _, err := s.LookupKey(k, netip.Addr{}); err == nil {
			t.Errorf("%s, beside the blocked one, not refused", k.Fingerprint())
		}
	}
	if file, err := s.Revoke(k5); file != "" || err == nil {
		t.Errorf("Revoke of the blocked key = %q, %v", file, err)
	}
}
