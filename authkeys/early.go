package authkeys

import (
	"context"
	"errors"
	"net/netip"

	"github.com/keytool/keytool/internal/keydir"
)

// OpenEarly is Open for a server that must decide its first handshakes
// before it has read every file (docs/design.md, "Early decisions"). It
// returns at once. In the background it first proves the admin index
// (the one admin commands keep, opts.Index) complete for the files as
// they are — every file's stamp, as a removal proves it — and then loads
// and watches everything, as Open does. Until that full load is
// published, Decide answers from the files the index names for the key,
// the files no watch sees written (links), the skipped ones, every
// single file and every revocation directory (one of
// keydir.IndexMinFiles files or more read whole once, then through its
// links), all examined again at each decision (the files read before
// are vouched for by the watch, which began before the proof) and read
// through the same rule and parsers: revoked, authorized, expired or
// from the wrong network, as the full snapshot would.
//
// It waits for the full load instead — never guesses — for a key the
// index does not know (Unknown, which a CA may stand in for), while the
// proof runs, and for good once any file of the store changed since the
// proof began, or where it cannot prove: no index (no admin command made
// one; a directory of fewer than keydir.IndexMinFiles files needs none),
// an index it may not lock within 50 ms (an admin command holding it) or
// bring up to date, a feed, a file system whose stamps come from a
// cache. A server deciding connections again on changes
// (tlsbridge.LiveConns) decides those admitted early again when the full
// load is published. Where no admin command made the index, or the proof
// could not bring it up to date, the full load writes it
// (keydir.Loader.IndexAfter) for the next start. opts.Index may name a
// directory of the server's own, outside the home (keytool proxy
// --index-dir): for a server whose user may not write the home's.
//
// Lookup and LookupKey decide as Decide does. Every other method that
// reads or writes entries (Entries, Revoked, FindKeys, NameHolder,
// SharedNames, UnprintableNames, Add, Remove, Revoke, Unrevoke,
// AcceptRotation, SetAcceptRotation) first waits for the full load
// (Loaded); Problems and Status say what is loaded so far.
func OpenEarly(ctx context.Context, opts Options) *Store {
	s := newStore(opts)
	s.IndexBy(entryTerms) // IndexAfter's
	e := &early{turn: make(chan struct{}, 1)}
	s.loaded, s.opened = make(chan struct{}), make(chan struct{})
	e.loaded = s.loaded
	e.turn <- struct{}{} // until the proof ends: a decision waits for it
	s.early.Store(e)
	go func() {
		defer close(s.opened)
		quiet := opts
		quiet.Logger = nil // the full load logs what it finds, once
		n := newStore(quiet)
		n.IndexBy(entryTerms)
		err := n.Loader().LoadProved(keydir.Query{})
		if err == nil {
			e.store = n
		} else if np := (*keydir.NotProvedError)(nil); errors.As(err, &np) && np.Large && opts.Logger != nil {
			opts.Logger.Info("first clients wait for the full load", "error", err)
		}
		<-e.turn
		if earlyProved != nil {
			earlyProved()
		}
		index := s.Loader().IndexAfter(err)
		s.Start(ctx, true) // its publication ends the early decisions, and closes s.loaded (build)
		if s.early.Swap(nil) != nil {
			close(s.loaded) // a load that published nothing: an empty store
		}
		e.end()
		if ctx.Err() == nil {
			// For the next start, where no admin command made one.
			if err := index(); err != nil && opts.Logger != nil {
				opts.Logger.Info("admin index not written", "error", err)
			}
		}
	}()
	return s
}

// earlyProved, if set, is called once OpenEarly's proof has ended,
// before the full load: tests hold the full load there.
var earlyProved func()

// early is the state of OpenEarly's decisions before the full load.
type early struct {
	loaded <-chan struct{} // the store's: closed once the full load is published
	// turn serialises early decisions (and the proof before them), as a
	// mutex a waiter can give up on when the full load is published.
	turn    chan struct{}
	store   *Store // proved (keydir.Loader.LoadProved); nil: none, or no longer
	decided int    // decisions answered early (for tests)
}

// decide decides for sum from the proved store; ok is false where the
// full load must decide.
func (e *early) decide(sum [32]byte, remote netip.Addr) (d Decision, ok bool) {
	select {
	case e.turn <- struct{}{}:
	case <-e.loaded:
		return Decision{}, false // published while this one waited: it decides
	}
	defer func() { <-e.turn }()
	if e.store == nil {
		return Decision{}, false
	}
	if !e.store.Loader().ExtendProved(keydir.Query{Terms: []keydir.Term{keydir.KeyTerm(sum)}}) {
		e.store.Close()
		e.store = nil
		return Decision{}, false
	}
	d = e.store.Decide(sum, remote)
	if d.Verdict == Unknown {
		return Decision{}, false
	}
	e.decided++
	return d, true
}

// end drops the proved store once the full load is published.
func (e *early) end() {
	e.turn <- struct{}{}
	defer func() { <-e.turn }()
	if e.store != nil {
		e.store.Close()
		e.store = nil
	}
}

// Loaded returns a channel closed once the store's full load is
// published: at once for a store Load or Open made, later for one
// OpenEarly made.
func (s *Store) Loaded() <-chan struct{} {
	if s.loaded != nil {
		return s.loaded
	}
	return closed
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// waitLoaded waits for the full load of a store OpenEarly made.
func (s *Store) waitLoaded() {
	if s.loaded != nil {
		<-s.loaded
	}
}

// Close stops watching; for a store OpenEarly made, it first waits for
// its full load to end, and for the admin index written after it for the
// next start (keydir.Loader.IndexAfter; 1–3 s at 100,000 files): a
// server stopping calls Close before it cancels OpenEarly's context,
// after which no index is written. Lookups keep answering from the last
// snapshot.
func (s *Store) Close() error {
	<-s.Settled()
	return s.Lifecycle.Close()
}

// Settled returns a channel closed once a store OpenEarly made has done
// what it does of its own accord: its full load published and, where it
// writes one, the admin index for the next start written or given up
// (1–3 s after the load at 100,000 files). At once for a store Load or
// Open made. A stopping server waits for this before it exits, not for
// Close, which also waits for a reload under way.
func (s *Store) Settled() <-chan struct{} {
	if s.opened != nil {
		return s.opened
	}
	return closed
}

// Problems returns the files skipped in the snapshot lookups decide on:
// the one this store published (Store.build), which a store OpenEarly
// made publishes before its loader's own (Loaded is closed there, and a
// caller waiting for it must find the problems of that load).
func (s *Store) Problems() []Problem {
	return append([]Problem(nil), s.snap.Load().files.Problems...)
}
