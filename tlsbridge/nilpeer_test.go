package tlsbridge

import (
	"context"
	"testing"
)

// A handler that is not behind Middleware gets a nil Peer from
// PeerFromContext; its methods must refuse, not panic (found by a review
// that called PeerFromContext(ctx).Name() outside Middleware, as the
// examples do inside it).
func TestNilPeerIsNotAuthenticated(t *testing.T) {
	p := PeerFromContext(context.Background())
	if p != nil {
		t.Fatalf("PeerFromContext of a bare context = %v, want nil", p)
	}
	if p.Authenticated() {
		t.Error("a nil Peer is authenticated")
	}
	if p.MayEnroll() {
		t.Error("a nil Peer may enroll")
	}
	if got := p.Name(); got != "" {
		t.Errorf("Name() = %q, want empty", got)
	}
	if got := p.Fingerprint(); got != "" {
		t.Errorf("Fingerprint() = %q, want empty", got)
	}
	if got := p.KeyID(); got != "" {
		t.Errorf("KeyID() = %q, want empty", got)
	}
	if got := p.Reason(); got != ReasonNoCertificate {
		t.Errorf("Reason() = %q, want %q", got, ReasonNoCertificate)
	}
}
