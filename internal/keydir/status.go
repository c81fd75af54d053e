package keydir

// Status sums up a store's current snapshot, for metrics and readiness
// checks that must not copy a million entries to count them.
type Status struct {
	Generation uint64 // the snapshot's; zero before the first load
	Keys       int    // entries of the trust sources (a key in two files counts twice)
	Revoked    int    // entries of the revocation sources
	Skipped    int    // files and entries skipped (Problems)
	// RevocationErr is set while a revocation input fails closed: every
	// key is refused.
	RevocationErr error
}

// Status sums up the current snapshot.
func (lc Lifecycle[T]) Status() Status {
	sn := lc.l.Snapshot()
	st := Status{Generation: sn.Generation, Skipped: len(sn.Problems), RevocationErr: sn.RevocationErr}
	for src := range sn.rows {
		n := &st.Keys
		if lc.l.cfg.Sources[src].Revocation {
			n = &st.Revoked
		}
		for num := range sn.numsOf(src) {
			r, _ := sn.RefAt(num) // no File made: metrics read it often
			*n += r.Len()
		}
	}
	return st
}
