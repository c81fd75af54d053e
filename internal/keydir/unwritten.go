package keydir

import (
	"errors"
	"slices"

	"github.com/keytool/keytool/internal/atomicfile"
)

// Unwritten is, for one query of a removal that edits many files
// (authkeys' and knownhosts' RemoveAll: one EditFile of each file for
// all their queries, in steps), the files it could not rewrite: each
// with the error of its last try, in the order the query first failed
// on them. A file a later step did rewrite is taken off (Tried) — its
// copies are gone: the admin mended it meanwhile, or the queries
// together emptied it —, and so is one that no longer holds what the
// query matches at the end (Keep), so that the query's outcome (Err)
// names only a file that still holds what it asked to remove.
type Unwritten struct {
	files []string
	errs  []error
}

// Tried records a try at rewriting file for the query, and its error:
// nil takes the file off.
func (u *Unwritten) Tried(file string, err error) {
	i := slices.Index(u.files, file)
	switch {
	case i >= 0 && err == nil:
		u.files, u.errs = slices.Delete(u.files, i, i+1), slices.Delete(u.errs, i, i+1)
	case i >= 0:
		u.errs[i] = err
	case err != nil:
		u.files, u.errs = append(u.files, file), append(u.errs, err)
	}
}

// Keep keeps the files for which holds reports true, and those the
// snapshot holds as a problem of the whole file (problems): a removal
// asks, at its end, which still hold what the query matches. Another
// query's rewrite may have taken the copy (it was set aside for that
// one, so this query did not try the file again), or the admin took it
// out between the steps: the file is then no cause of the query's
// outcome. A file the load could not read — the rule now refuses it, it
// no longer parses — may hold the copy still: its error stays (fail
// closed; found by review). A file removed whose directory could not
// be synced (*atomicfile.UnsyncedError) stays too: it holds nothing
// now, and may again after a power loss (found by review: the query
// said "not found").
func (u *Unwritten) Keep(holds func(file string) bool, problems []Problem) {
	unread := map[string]bool{}
	for _, p := range problems {
		if !p.Entry {
			unread[p.Path] = true
		}
	}
	for i := len(u.files) - 1; i >= 0; i-- {
		if !holds(u.files[i]) && !unread[u.files[i]] && !errors.As(u.errs[i], new(*atomicfile.UnsyncedError)) {
			u.files, u.errs = slices.Delete(u.files, i, i+1), slices.Delete(u.errs, i, i+1)
		}
	}
}

// Err is the error of the first file still unwritten, or nil.
func (u *Unwritten) Err() error {
	if len(u.errs) == 0 {
		return nil
	}
	return u.errs[0]
}
