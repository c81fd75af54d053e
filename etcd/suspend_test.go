package etcd

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestStaleAfterSuspend: a suspend stops the monotonic clock, not the
// wall clock. A view confirmed a moment ago on the monotonic clock but an
// hour ago on the wall clock (a host resumed after sleeping an hour, etcd
// not answering since) is stale, and found so within about a second
// (staleEvery), though no timer armed for the bound has fired: it was
// used for MaxStaleness again, the monotonic age alone counted (found by
// review). A wall clock stepped back still makes no view younger
// (TestCurrentIsMonotonic).
func TestStaleAfterSuspend(t *testing.T) {
	ms := startCluster(t, 1)
	alice := keydirtest.Key(t, 1)
	put(t, client(t, ms[0].endpoint()), Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	var slept atomic.Int64 // how far the wall clock is ahead of this process's monotonic one
	wall := func() time.Time { return time.Now().Add(time.Duration(slept.Load())) }
	// No check within the test (Progress an hour): nothing confirms the
	// view after the suspend.
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, MaxStaleness: time.Minute, Progress: time.Hour, wall: wall})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	// A store of the authorized entries alone: nothing refuses alice as
	// Revoked when the view turns stale, and her "not authorized" must
	// say why (authkeys.NotAuthorizedError.First).
	only := authkeys.Open(t.Context(), authkeys.Options{Feeds: []authkeys.Feed{src.Feed(Authorized)}})
	defer only.Close()
	eventually(t, 10*time.Second, "alice admitted", func() bool {
		return verdict(store, alice) == authkeys.Authorized && verdict(only, alice) == authkeys.Authorized
	})

	slept.Store(int64(time.Hour))
	start := time.Now()
	eventually(t, 10*time.Second, "the view stale, an hour old on the wall clock", func() bool {
		var se *StaleError
		return errors.As(src.Feed(Authorized).View().Err, &se) && verdict(store, alice) != authkeys.Authorized
	})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the view found stale %v after the resume, want about %v", d, staleEvery)
	}
	eventually(t, 10*time.Second, "alice refused by the authorized entries alone, naming the stale view", func() bool {
		d := only.Decide(alice.SPKIHash(), netip.Addr{})
		var se *StaleError
		return d.Verdict == authkeys.Unknown && d.Incomplete && errors.As(d.Err, &se)
	})
}
