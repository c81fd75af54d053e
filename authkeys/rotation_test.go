package authkeys

import (
	"net/netip"
	"testing"
)

// AcceptRotation decides again on the current key, after the server's
// decision that handed it the entry: a key revoked or removed in between
// authorizes nothing.
func TestAcceptRotationRechecksTheCurrentKey(t *testing.T) {
	for _, change := range []string{"revoked", "removed"} {
		t.Run(change, func(t *testing.T) {
			s := Load(HomeOptions(t.TempDir()))
			cur, next := key(t, 1), key(t, 2)
			if _, err := s.Add(cur, "alice", AddNew); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SetAcceptRotation("alice", true); err != nil {
				t.Fatal(err)
			}
			e, err := s.LookupKey(cur, netip.Addr{})
			if err != nil {
				t.Fatal(err)
			}
			if change == "revoked" {
				_, err = s.Revoke(cur)
			} else {
				_, err = s.Remove("alice")
			}
			if err != nil {
				t.Fatal(err)
			}
			if added, err := s.AcceptRotation(e, next); err == nil {
				t.Fatalf("the next key of a key %s was authorized: %s", change, added.File)
			}
			if d := s.Decide(next.SPKIHash(), netip.Addr{}); d.Verdict != Unknown {
				t.Errorf("the next key is %v", d.Verdict)
			}
		})
	}
}
