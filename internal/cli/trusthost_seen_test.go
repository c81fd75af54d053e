package cli

import (
	"testing"

	"github.com/keytool/keytool/knownhosts"
)

// trust-host reports the key the server presented: the decisions on the
// keys it announces (--update-host-keys), which the client asks the same
// store about after it, do not replace it.
func TestSeenHostsKeepsThePresentedKey(t *testing.T) {
	store := knownhosts.Load(knownhosts.HomeOptions(t.TempDir()))
	defer store.Close()
	h := &seenHosts{Store: store}
	presented, announced := [32]byte{1}, [32]byte{2}
	h.Decide("db.example:443", presented)
	h.Decide("db.example:443", announced)
	if !h.seen || h.sum != presented {
		t.Fatalf("seen %v, sum %x: want the presented key", h.seen, h.sum[:1])
	}
}
