package tlsbridge

import (
	"sync"
	"testing"

	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/knownhosts"
)

// Concurrent handshakes with a pinned host that announces new keys at
// each one — clients of one store, and clients of stores of their own on
// one trusted_hosts.d, as processes sharing a home — get no more keys
// pinned for the address, between them, than one certificate needs: its
// key and MaxAnnounced next ones. Before (found by review, 2026-12-05),
// the count (KeysPinnedAt) and the write (AddKey) were two steps: each
// client found room, and together they pinned four keys each. Run it
// under -race too.
func TestUpdateHostKeysBoundedConcurrently(t *testing.T) {
	const clients = 12
	addr, cl := freshAnnouncerPinned(t)
	var log testlog.Buffer // a refusal per client: not the test's output
	shared := cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()})
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range clients {
		c := shared
		if i%2 == 1 {
			// A store of its own, loaded before any announcement: another
			// process's keytool connect.
			c = cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger(), Hosts: knownhosts.Load(knownhosts.HomeOptions(cl.dir))})
		}
		wg.Go(func() {
			<-start
			for range 2 {
				if err := learnTrip(t, c, addr); err != nil {
					t.Error(err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if n := knownhosts.Load(knownhosts.HomeOptions(cl.dir)).KeysPinnedAt(addr); n != 1+MaxAnnounced {
		t.Errorf("%d keys pinned for the address, want %d, never more", n, 1+MaxAnnounced)
	}
}
