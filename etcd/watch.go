package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"
)

// requestTimeout bounds one request to etcd (a page of a list, a
// progress request), so that an unreachable cluster shows as an error
// and a retry, not as a request hanging for ever.
const requestTimeout = 5 * time.Second

// firstWait is the wait before the first retry of a list or watch that
// failed; each failure in a row doubles it (sleep).
const firstWait = 100 * time.Millisecond

// run lists the prefix and watches it until ctx ends: list, watch from
// the list's revision + 1; on a watch that ends, watch again from the last
// revision seen; on a compacted revision, or etcd's below the view's (a
// restore), list again. The wait before a retry doubles with each
// failure in a row, and starts again at firstWait after a list, or after
// a watch that served (an event, a progress notification, the view
// confirmed current while it was open): else a Source whose watch had
// ended a few times over its life, hours apart, waited the longest wait
// (3 s) after every end since, the view that long behind a revocation.
func (s *Source) run(ctx context.Context) {
	listed := false
	wait := firstWait
	for ctx.Err() == nil {
		if !listed {
			if err := s.list(ctx); err != nil {
				s.log.Warn("etcd: cannot list the prefix; retrying", "prefix", s.prefix, "error", err, "in", wait)
				wait = sleep(ctx, wait)
				continue
			}
			listed, wait = true, firstWait
		}
		relist, served, err := s.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if relist {
			s.log.Warn("etcd: the history the view follows is gone; listing again", "prefix", s.prefix, "error", err)
			listed = false
			continue
		}
		if served {
			wait = firstWait // this end is the first failure, not one more in a row
		}
		s.log.Warn("etcd: watch ended; watching again from the last revision seen", "prefix", s.prefix, "revision", s.Revision(), "error", err, "in", wait)
		wait = sleep(ctx, wait)
	}
}

// reconnect has the client's connection try etcd again at the Source's
// pace, not gRPC's, until ctx ends. Between attempts gRPC waits up to 120
// s, its wait growing 1.6 times from 1 s: after an outage of 45 s, etcd
// answered again for 25 s before the connection tried it, the view stale
// all that while and every key refused (measured, 2026-12-05). Nor can
// the Source's own retries stand in: a watch being made waits in
// clientv3's Watch for a connection (startWatch gives it up only while
// the client has one), which gRPC makes at its own pace. So while the
// connection is in transient failure (no member reachable) this asks it
// to try again (grpc.ClientConn.ResetConnectBackoff)
// after a wait of 100 ms, doubling up to reconnectEvery, each drawn
// ±50%: about an attempt a second to a cluster whose connections are
// refused, where etcd back is tried within about a second. (A connection
// that hangs, packets dropped, stays connecting for gRPC's connect
// timeout of 20 s, which this does not shorten: the client's
// grpc.ConnectParams.MinConnectTimeout does, as keytool's sets it to
// --etcd-dial-timeout.) Otherwise it waits for
// the connection's state to change.
func (s *Source) reconnect(ctx context.Context) {
	cc := s.opts.Client.ActiveConnection()
	if cc == nil {
		return
	}
	wait := firstWait
	for ctx.Err() == nil {
		state := cc.GetState()
		if state != connectivity.TransientFailure {
			wait = firstWait
			cc.WaitForStateChange(ctx, state)
			continue
		}
		// Each wait drawn from half to one and a half times it, so that
		// the hosts of a fleet, cut off together, do not all connect in
		// the same millisecond when etcd is back.
		sleep(ctx, wait/2+rand.N(wait))
		wait = min(2*wait, reconnectEvery)
		cc.ResetConnectBackoff()
	}
}

// reconnectEvery is reconnect's longest wait between two attempts, before
// its draw.
const reconnectEvery = time.Second

// sleep waits d (or until ctx ends) and returns the next wait, doubled up
// to three seconds.
func sleep(ctx context.Context, d time.Duration) time.Duration {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return min(2*d, 3*time.Second)
}

// list reads the whole prefix at one revision (in pages, each pinned to
// the first page's revision) and swaps the result in as the view.
func (s *Source) list(ctx context.Context) error {
	asked := time.Now()
	start := s.prefix + "/"
	end := clientv3.GetPrefixRangeEnd(start)
	kv := map[string][]byte{}
	var rev, witnessRev, count int64
	var cluster uint64
	var witness string
	for key := start; ; {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := s.opts.Client.Get(rctx, key, opts...)
		cancel()
		if err != nil {
			return err
		}
		if resp.Header == nil {
			return &NoHeaderError{Request: "list", Key: start}
		}
		if rev == 0 {
			// The first page's count is the whole prefix's.
			rev, cluster, count = resp.Header.Revision, resp.Header.ClusterId, resp.Count
		}
		for _, e := range resp.Kvs {
			rel, ok := strings.CutPrefix(string(e.Key), start)
			if !ok {
				// Not etcd's answer to this range (a proxy or a member
				// gone wrong): none of it is trusted.
				return &OutsideKeyError{Prefix: start, Key: string(e.Key)}
			}
			kv[rel] = e.Value
			if e.ModRevision > witnessRev {
				witness, witnessRev = rel, e.ModRevision
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	v := s.makeView(rev, kv)
	v.witness, v.witnessRev = witness, witnessRev
	if witnessRev < rev {
		v.listRev, v.listCount = rev, count
	}
	s.cluster.Store(cluster)
	if len(v.outside) > 0 {
		s.log.Warn("etcd: keys outside the layout ignored", "prefix", s.prefix, "keys", len(v.outside), "first", v.outside[0].Path)
	}
	s.cur.Store(v)
	s.markCurrent(asked)
	s.relists.Add(1)
	s.publish(v, allKinds)
	s.markReady()
	return nil
}

// watch follows the prefix from the view's revision + 1 until the watch
// ends; relist reports that the history it follows is gone: the revision
// it needed compacted, or etcd's revision below the view's (check).
// served says the watch worked before it ended: it sent events or a
// progress notification, or check confirmed the view while it was open.
func (s *Source) watch(ctx context.Context) (relist, served bool, err error) {
	// Without a leader a member's view may be old: WithRequireLeader makes
	// it end the watch, and another member is tried.
	w, done := s.watcher()
	defer done() // after cancel: a check still running then sends nothing to a closed watcher
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch, made := s.startWatch(wctx, cancel, w)
	if !made {
		return false, false, fmt.Errorf("etcd: the watch was not made in %v: its member does not answer", requestTimeout)
	}
	tick := time.NewTicker(s.opts.Progress)
	defer tick.Stop()
	var checked chan checkResult // nil unless a check is under way
	// A watch whose member stops answering — frozen, paused, cut off by a
	// firewall that drops its packets — neither ends nor sends: gRPC keeps
	// the connection while nothing says it is dead (the caller's client
	// may set no keepalive), and the view would fall behind for good,
	// revocations unseen, until it turned stale and every key refused,
	// though the other members answer (measured: a minute and more behind
	// with one of three members frozen). A check that found etcd past the
	// view asked the watch for a progress notification: a watch that then
	// sends nothing at all (no event, no notification) within
	// requestTimeout is left, and the next watch is made, on the
	// connections that answer.
	var (
		heard   time.Time        // when the watch last sent something
		silence <-chan time.Time // nil unless a progress request awaits its answer
		asked   checkResult      // the check that made it
	)

	s.want.Store(nil) // another watch's
	for {
		select {
		case <-ctx.Done():
			return false, served, ctx.Err()
		case <-tick.C:
			if checked == nil {
				checked = make(chan checkResult, 1)
				ch := checked
				s.wg.Go(func() { ch <- s.check(wctx, w) }) // run holds wg: Close waits for it
			}
		case r := <-checked:
			checked = nil
			if r.gone != nil {
				return true, served, r.gone
			}
			if r.current {
				s.progressed(r.rev, r.at)
				served = true
			}
			if r.behind && silence == nil {
				silence, asked = time.After(requestTimeout), r
			}
		case <-silence:
			silence = nil
			if heard.Before(asked.at) {
				return false, served, fmt.Errorf("etcd: the watch sent nothing in %v after a progress request, etcd at revision %d and the view at %d: its member does not answer, or does not answer progress requests (etcd's gRPC proxy; a member still catching up)", requestTimeout, asked.rev, s.Revision())
			}
		case wr, ok := <-wch:
			heard = time.Now()
			if !ok {
				return false, served, errors.New("etcd: watch channel closed")
			}
			if err := s.otherCluster(wr.Header.ClusterId); err != nil {
				return true, served, err
			}
			if wr.CompactRevision != 0 {
				return true, served, fmt.Errorf("etcd: revision %d compacted (oldest kept %d)", s.Revision()+1, wr.CompactRevision)
			}
			if err := wr.Err(); err != nil {
				return false, served, err
			}
			if wr.IsProgressNotify() {
				// Every event up to the header's revision was sent: the
				// view is at that revision. It is current as of the check
				// that asked, if that revision is at least the one the
				// check read; else the member serving the watch is behind
				// (its notification is at its own revision), and nothing is
				// said of what was written since: not confirmed.
				served = true
				if w := s.want.Load(); w != nil && wr.Header.Revision >= w.rev {
					s.want.CompareAndSwap(w, nil)
					s.progressed(wr.Header.Revision, w.at)
				} else {
					s.advance(wr.Header.Revision)
				}
				continue
			}
			s.apply(wr.Events)
			served = served || len(wr.Events) > 0
		}
	}
}

// startWatch makes the watch of the prefix from the view's revision + 1.
// clientv3's Watch returns once the member says the watch is made, and
// one that does not answer would hold it, and the Source, for good: the
// watch is given up (made false, wctx cancelled) where no answer came
// within requestTimeout while the client had a connection. With none
// (no member reachable) Watch waits for one, as long as it takes, and
// goes on the moment there is one (reconnect hastens it): given up and
// made again every few seconds, it was 4 s late after an outage (where
// 0.3–1 s is usual: TestReconnectsAtTheSourcesPace). A client with no
// connection to look at (NewCtxClient's) is taken as having one.
func (s *Source) startWatch(wctx context.Context, cancel context.CancelFunc, w clientv3.Watcher) (wch clientv3.WatchChan, made bool) {
	returned, stopped := make(chan struct{}), make(chan struct{})
	gaveUp := false
	go func() {
		defer close(stopped)
		t := time.NewTimer(requestTimeout)
		defer t.Stop()
		for {
			select {
			case <-returned:
				return
			case <-t.C:
				if cc := s.opts.Client.ActiveConnection(); cc == nil || cc.GetState() == connectivity.Ready {
					gaveUp = true
					cancel()
					return
				}
				t.Reset(requestTimeout)
			}
		}
	}()
	wch = w.Watch(wctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(s.Revision()+1), clientv3.WithProgressNotify())
	close(returned)
	<-stopped
	return wch, !gaveUp
}

// watcher returns the Watcher of one watch, and what ends it. It is a
// watcher of its own, closed at the watch's end, unless the caller set
// the client's Watcher (namespace.NewWatcher, a test's), which is then
// used as it is. clientv3's Watcher keeps one gRPC stream for all the
// watches of a context's metadata, and a stream whose watch was given up
// before its member said it was made (startWatch) waits for that member's
// answer: the next watch waited on it, the member frozen, for good
// (seen); a stream given up otherwise is not kept. A watcher of its own,
// closed, takes its streams with it, and the next watch's stream is on a
// connection the client picks anew. With the caller's Watcher, a watch
// left for its silence is made again as with one of its own, but one
// given up before it was made leaves the next waiting behind it, until
// the frozen member's connection ends: a client with keepalive
// (clientv3.Config.DialKeepAliveTime) ends it (docs/fleet.md).
func (s *Source) watcher() (w clientv3.Watcher, done func()) {
	c := s.opts.Client
	if c.ActiveConnection() == nil {
		// A client made by NewCtxClient (and given a Watcher of its own,
		// NewWatchFromWatchClient on an adapter, of the same type as
		// clientv3's): NewWatcher would watch on its connection, which it
		// does not have.
		return c.Watcher, func() {}
	}
	own := clientv3.NewWatcher(c) // nothing runs until it watches
	if reflect.TypeOf(c.Watcher) != reflect.TypeOf(own) {
		return c.Watcher, func() {}
	}
	return own, func() { own.Close() }
}

// checkResult is what check found.
type checkResult struct {
	rev     int64
	current bool
	// at is when the check began, before its read: a view current at
	// rev is current as of at (as progressWant.at is for a notification).
	at time.Time
	// gone says why the history the view follows is not etcd's (another
	// cluster, a revision below the view's): the Source lists again.
	gone error
	// behind says that etcd is at rev, past the view, and a progress
	// notification was asked of the watch (the request sent, or not
	// taken by its stream within requestTimeout).
	behind bool
}

// check asks etcd whether the view is current. A linearizable read of one
// key gives the store's revision: if the view is at it already, nothing
// happened since and the view is current. Otherwise it asks for a progress
// notification, which the watch loop takes as the confirmation if it is
// at that revision or past it (Source.want): a notification is at the
// revision of the member serving the watch, which may be behind the one
// that answered the read, and says nothing of what it has not yet
// applied (a member stuck behind, a revocation past it). (etcd
// answers a progress request only once the store's revision has reached
// the watch's start revision: in a store where nothing happened since the
// list, the read is the only confirmation there is.)
//
// The read tells too whether etcd's history is the view's (gone, and the
// Source lists again; otherCluster for another cluster). A revision below
// the view's is another history: etcd restored from a snapshot without
// --bump-revision. The watch, resumed past the view's revision, would
// never send the writes made since the restore at the revisions the view
// had passed (a revocation among them), and the read would confirm the
// view for ever. So is one where the key of the view's last write (its
// witness, a removal among them), read at that write's revision, is not
// that write: a restore to before it, written past the view's revision
// since, which the revision alone does not show; and, while the witness
// is a list's (which sees no removal), one whose count of the prefix's
// keys at the list's revision is not the list's (lostRemoval). (A
// restore that kept the witness and lost only later writes elsewhere, or
// one whose new history writes that key at that revision or brings the
// count back, is not told: docs/fleet.md.) The view is taken before the
// read: the read, linearizable, is at least the revision of every event
// had before it, not of one applied while it is under way.
func (s *Source) check(ctx context.Context, w clientv3.Watcher) checkResult {
	asked := time.Now()
	v := s.cur.Load()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// Keys of PREFIX/ only, which a host's role on that range may read
	// (the key PREFIX itself it may not: refused, nothing was confirmed).
	witnessed, key := v.witness != "", s.prefix+"/"+v.witness
	resp, err := s.opts.Client.Get(rctx, key, clientv3.WithKeysOnly(), clientv3.WithRev(v.witnessRev))
	if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrFutureRev) {
		// etcd no longer has the witness's revision, or not yet: the
		// revision now says what it can.
		witnessed, key = false, s.prefix+"/"
		resp, err = s.opts.Client.Get(rctx, key, clientv3.WithKeysOnly())
	}
	if err == nil && resp.Header == nil {
		// Not etcd's answer (a proxy or a member gone wrong): no
		// revision, no cluster, nothing confirmed. Said at Warn, as a
		// list's refusal is: etcd down is Debug, this is no outage.
		err = &NoHeaderError{Request: "read", Key: key}
		s.log.Warn("etcd: cannot confirm the view is current", "prefix", s.prefix, "error", err)
	} else if err != nil && ctx.Err() == nil {
		s.log.Debug("etcd: cannot confirm the view is current", "error", err)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.unconfirmed.Store(&err)
		}
		return checkResult{}
	}
	s.unconfirmed.Store(nil)
	if err := s.otherCluster(resp.Header.ClusterId); err != nil {
		return checkResult{gone: err}
	}
	rev := resp.Header.Revision
	if rev < v.rev {
		return checkResult{gone: fmt.Errorf("etcd: revision %d, below the view's %d: etcd restored from a snapshot, its revisions not bumped past the view's?", rev, v.rev)}
	}
	present := len(resp.Kvs) > 0
	if witnessed && (present == v.removed || present && resp.Kvs[0].ModRevision != v.witnessRev) {
		return checkResult{gone: fmt.Errorf("etcd: %s at revision %d is not what the view holds there: another history (etcd restored from a snapshot?)", s.prefix+"/"+v.witness, v.witnessRev)}
	}
	if gone, err := s.lostRemoval(rctx, v); gone != nil || err != nil {
		if err != nil && ctx.Err() == nil {
			s.unconfirmed.Store(&err)
			s.log.Debug("etcd: cannot confirm the view is current", "error", err)
		}
		return checkResult{gone: gone}
	}
	if rev <= s.Revision() {
		s.want.Store(nil) // one for an earlier time is not needed
		return checkResult{rev: rev, current: true, at: asked}
	}
	// The oldest confirmation not yet had stays wanted: a member serving
	// the watch a little behind the one that answered the read (writes
	// coming all the time) answers at a revision below this one, and
	// reaches it later — confirming the view as of then, not never.
	s.want.CompareAndSwap(nil, &progressWant{at: asked, rev: rev})
	// A time of its own: the reads may have used most of rctx's, and a
	// request not sent would have a quiet watch, which could not answer
	// it, left for its silence. One not sent in that time is a stream
	// that takes nothing: its silence leaves it.
	pctx, cancelProgress := context.WithTimeout(ctx, requestTimeout)
	defer cancelProgress()
	if err := w.RequestProgress(pctx); err != nil && ctx.Err() == nil {
		s.log.Debug("etcd: progress request failed", "error", err)
	}
	return checkResult{rev: rev, at: asked, behind: true}
}

// lostRemoval says whether etcd's count of the prefix's keys at the
// revision of the list the view came from is not the list's (gone: the
// Source lists again), while the view's witness is that list's and below
// its revision (view.listRev). A list sees no removal: its witness, the
// last key still there, vouches for no write after it, and a restore to
// between the two that lost a removal, written past the view since, kept
// the witness and the revision check's due — the removed key (a
// revocation among them) back in etcd, unseen, the view admitting what
// etcd refuses. The count at the list's revision in that history is not
// the list's, unless the writes since the restore made it so by chance
// (docs/fleet.md). A revision compacted says nothing: not checked.
func (s *Source) lostRemoval(ctx context.Context, v *view) (gone, err error) {
	if v.listRev == 0 {
		return nil, nil
	}
	resp, err := s.opts.Client.Do(ctx, CountAt(s.prefix, v.listRev))
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return nil, nil
	case err != nil:
		return nil, err
	}
	got := resp.Get()
	if got == nil || got.Header == nil {
		return nil, &NoHeaderError{Request: "count", Key: s.prefix + "/"}
	}
	if got.Count != v.listCount {
		return fmt.Errorf("etcd: %d keys under %s at revision %d, where the view's list had %d: another history (etcd restored from a snapshot?)", got.Count, s.prefix+"/", v.listRev, v.listCount), nil
	}
	return nil, nil
}

// otherCluster says whether cluster (a response header's ClusterId) is
// not the one the view was listed from: another cluster answering at the
// members' addresses (a failover to another site's, a restore under
// another cluster token) has revisions of its own, and a watch resumed
// past the view's revision would never send what it holds at the lower
// ones (a revocation among them).
func (s *Source) otherCluster(cluster uint64) error {
	if want := s.cluster.Load(); cluster != 0 && want != 0 && cluster != want {
		return fmt.Errorf("etcd: cluster %x answers, not %x, whose history the view follows", cluster, want)
	}
	return nil
}

// progressWant is what a progress notification must reach to confirm
// the view current as of at: rev, etcd's revision read (linearizably)
// after at.
type progressWant struct {
	at  time.Time
	rev int64
}

// progressed records a confirmation: the view is current at revision rev
// as of t.
func (s *Source) progressed(rev int64, t time.Time) {
	s.advance(rev)
	s.markCurrent(t)
}

// advance records that every event up to rev was sent: the view is at
// rev (it holds them), if it was not past it.
func (s *Source) advance(rev int64) {
	if v := s.cur.Load(); rev > v.rev {
		nv := *v
		nv.rev = rev
		s.cur.Store(&nv)
	}
}

// apply makes the view that events lead to. The entries' sets share
// every node an event did not touch (keydir.FeedSet), so that an event
// costs the same in a prefix of any size. An event at or below the last
// one applied (view.applied) is already in the view (a resumed watch may
// deliver it again) and is skipped: nothing is applied twice. One at or
// below the view's revision but past the last applied is not: a progress
// notification moved the view there before the event came (a member
// older than etcd 3.5.8), and it is applied.
func (s *Source) apply(events []*clientv3.Event) {
	old := s.cur.Load()
	nv := *old
	nv.other = maps.Clone(old.other)
	nv.outside = slices.Clone(old.outside)
	var touched [numKinds]bool
	n := 0
	for _, ev := range events {
		if ev.Kv.ModRevision <= old.applied {
			continue
		}
		rel, ok := strings.CutPrefix(string(ev.Kv.Key), s.prefix+"/")
		if !ok {
			// etcd never sends one: a proxy or a member gone wrong. It
			// grants nothing skipped, and is said as a list's is.
			s.log.Warn("etcd: watch answered a key outside the prefix", "prefix", s.prefix, "error", &OutsideKeyError{Prefix: s.prefix + "/", Key: string(ev.Kv.Key), Watch: true})
			continue
		}
		deleted := ev.Type == clientv3.EventTypeDelete
		nv.witness, nv.witnessRev, nv.removed = rel, ev.Kv.ModRevision, deleted
		nv.listRev = 0 // the event's witness vouches for the list's history too
		k, ok := s.place(&nv, rel, ev.Kv.Value, deleted)
		if ok {
			touched[k] = true
		} else if !deleted {
			s.log.Warn("etcd: key outside the layout ignored", "key", string(ev.Kv.Key))
		}
		nv.applied, nv.rev = ev.Kv.ModRevision, max(nv.rev, ev.Kv.ModRevision)
		n++
	}
	if n == 0 {
		return
	}
	s.publish(&nv, touched)
}
