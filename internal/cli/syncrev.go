package cli

import (
	"fmt"
	"time"
)

// syncAt is a state of the store a mirror brings the home to: the store's
// revision (0: the store does not say) and which store said it
// (StoreListing.Identity; etcd: its cluster ID).
type syncAt struct {
	rev     int64
	cluster string
}

// syncBehindError means a sync's list (or --watch's view) is of an older
// state of the store than the one the home was mirrored to, by this sync
// or another (the manifest's Revision): nothing was written or removed.
type syncBehindError struct {
	Home     string
	Cluster  string // the store both revisions are of ("": it does not say)
	Listed   int64  // the revision of the list (or view) refused
	Mirrored int64  // the revision the home was mirrored to
}

func (e *syncBehindError) Error() string {
	return fmt.Sprintf("the store answered at revision %d, older than revision %d that %s was mirrored to (by this sync or another of the home: --watch, or one from cron): nothing was written, the home keeps the newer state",
		e.Listed, e.Mirrored, e.Home)
}

// syncBehindTries is how many lists a one-shot sync makes before it gives
// up on lists older than the home (syncBehindError), syncBehindWait apart.
// The first refusal is most often a race: sync --watch took the lock with
// a newer change between this sync's list and its lock, and a list made
// after that holds the change. Only a store that keeps answering with an
// older state (a member behind the others, a store restored from a backup
// to an older revision) is left as an error.
var (
	syncBehindTries = 3
	syncBehindWait  = time.Second
)

// moveForward refuses, with a *syncBehindError, to mirror state at of
// the store into a home the manifest says was mirrored to a newer state
// of the same store, and otherwise records at in the manifest, saved
// before any file is written or removed (revisionSaved): a sync cut short
// halfway to at has already moved the home past what it was, and an older
// list must not move it back either. Under the lock prepare takes, so
// that a one-shot sync from cron and sync --watch see each other's
// records.
//
// A store that does not say its revision (0) is mirrored as it is, as
// before; so is a list of another store (a restore etcd made a new
// cluster), or after s.restored (--restored, or --watch's view that went
// back), whose state is then recorded as the home's.
func (s *syncer) moveForward(m *syncManifest, at syncAt) error {
	if !s.restored && at.rev > 0 && at.cluster == m.Cluster && at.rev < m.Revision {
		return &syncBehindError{Home: string(s.home), Cluster: at.cluster, Listed: at.rev, Mirrored: m.Revision}
	}
	m.mirroredTo(at)
	if !m.revDirty {
		s.restored = false // nothing to record: the manifest says at already
	}
	return nil
}

// revisionSaved saves the revision moveForward recorded in m, if no save
// has yet, just before the first file of a mirror is written or removed
// (place, unplace; syncChanging). Saved by moveForward itself, it was an
// append and fsync of the journal of its own for each change sync
// --watch mirrors: now the claim of the change's files (claim), which
// precedes their writes, carries it in the same append, and only a mirror
// whose first change is a removal (or a write no claim covered) saves it
// here. Either way no file moves the home to at before the manifest says
// at (docs/fleet.md, "sync"): a sync killed after that change leaves a
// manifest no older list passes (TestSyncSavesTheRevisionBeforeAnyChange).
func (s *syncer) revisionSaved(m *syncManifest, rel string) error {
	if m.revDirty {
		if err := s.saveManifest(m); err != nil {
			return err
		}
	}
	if syncChanging != nil {
		syncChanging(rel)
	}
	return nil
}

// syncChanging, if set, runs in revisionSaved, just before a file of the
// home is written or removed (tests read the manifest as another process
// would then).
var syncChanging func(rel string)
