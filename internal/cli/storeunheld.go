package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/knownhosts"
)

// Entries a copy of a store does not hold as their own file (heldFile:
// a value over the bound of the stores reading the store, a name that is
// no file name or one sync keeps) grant nothing there, and the command
// running on the copy would not see them: not list them, not remove them,
// and write a new entry over one. So the copy keeps, for each, a note in
// the .d directory of its kind, under a name every loader skips
// (keydir.Ignored: a dot), saying which entry it is, why, and at which
// revision: --list reports it as a skipped file, --remove removes it from
// the store (compared with that revision, as every removal is), and a new
// entry of its name is refused (HiddenEntryError). A note is written and
// removed with the entry's other files (materialize, the mirror's
// applyDelta and compare), so that the .d directories' stamps the mirror's
// manifest records vouch for the notes too.

// unheldPrefix begins the names of the notes.
const unheldPrefix = ".keytool-unheld-"

// unheldNote is what a note holds (JSON).
type unheldNote struct {
	Name     string `json:"name"`
	Revision int64  `json:"revision"`
	Size     int    `json:"size"`
	Max      int    `json:"max,omitempty"` // the bound, when Size is over it
	Why      string `json:"why"`           // entryFile's note
}

// noteRel is the note of entry name of kind, relative to the home.
func noteRel(kind, name string) string {
	return kind + ".d/" + unheldPrefix + contentSum([]byte(name))[:16]
}

// noteOf is the note (its path relative to the home, its content) by
// which a copy of the store records entry e, which it does not hold as its
// own file for a reason entryFile gives; false if it holds it as it is.
func noteOf(e StoreEntry, maxValue int) (rel string, val []byte, ok bool) {
	if !slices.Contains(StoreKinds, e.Kind) {
		return "", nil, false
	}
	_, _, n := entryFile(e, maxValue)
	if n.what == "" {
		return "", nil, false
	}
	note := unheldNote{Name: e.Name, Revision: e.Revision, Size: len(e.Value), Why: n.what}
	if maxValue > 0 && len(e.Value) > maxValue {
		note.Max = maxValue
	}
	val, err := json.Marshal(note)
	if err != nil {
		return "", nil, false
	}
	return noteRel(e.Kind, e.Name), val, true
}

// readNote reads the note at path; false if there is none that parses.
func readNote(path string) (unheldNote, bool) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > 64<<10 {
		return unheldNote{}, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return unheldNote{}, false
	}
	var n unheldNote
	if json.Unmarshal(data, &n) != nil || n.Name == "" || n.Revision <= 0 {
		return unheldNote{}, false
	}
	// Why is printed as it is read (--list, --remove, a refusal): a note
	// is keytool's own, in a private mirror, but its text is no more
	// trusted with the terminal than an entry's name is.
	n.Why = termtext.Safe(n.Why)
	return n, true
}

// noteFor reads the note of entry name of kind in the copy h; false if
// there is none (its file name is a hash of the name: the note must name
// the entry itself).
func noteFor(h home.Dir, kind, name string) (unheldNote, bool) {
	n, ok := readNote(filepath.Join(string(h), noteRel(kind, name)))
	return n, ok && n.Name == name
}

// SkippedEntryError is an entry of a store that the copy an edit command
// runs on does not hold (its note): --list reports it as a skipped file,
// named as the store's key.
type SkippedEntryError struct {
	Path       string // the entry's place in the copy (printed as the store's key)
	Kind, Name string
	Size       int // the value's size
	Max        int // the stores' bound, when Size is over it (0: not the reason)
	Why        string
}

func (e *SkippedEntryError) Error() string {
	does := "it grants nothing"
	if e.Kind == StoreRevoked {
		does = "it refuses every key until it is removed or fixed"
	}
	return fmt.Sprintf("%s: %s: the stores reading the store do not take it, and %s", e.Path, e.Why, does)
}

// unheldEntries are the notes of the copy's entries of kinds, as the
// problems --list reports: none unless the command runs on a copy of a
// store.
func (c *cli) unheldEntries(kinds ...string) []*SkippedEntryError {
	if !c.storeCopy {
		return nil
	}
	h := home.Dir(c.home)
	var out []*SkippedEntryError
	for _, kind := range kinds {
		des, err := os.ReadDir(kindDir(h, kind))
		if err != nil {
			continue
		}
		for _, de := range des {
			if !strings.HasPrefix(de.Name(), unheldPrefix) {
				continue
			}
			// A note must be the one of the entry it names (noteFor).
			n, ok := readNote(filepath.Join(kindDir(h, kind), de.Name()))
			if !ok || noteRel(kind, n.Name) != kind+".d/"+de.Name() {
				continue
			}
			out = append(out, &SkippedEntryError{Path: kindDir(h, kind) + "/" + termtext.Safe(n.Name), Kind: kind, Name: n.Name, Size: n.Size, Max: n.Max, Why: n.Why})
		}
	}
	slices.SortFunc(out, func(a, b *SkippedEntryError) int { return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name) })
	return out
}

// withoutStandIns leaves out of a copy's problems the files that stand for
// an entry it does not hold (unmirrorableRevocation's, which refuse every
// key): the entry itself is reported (unheldEntries), by its own name.
func (c *cli) withoutStandIns(problems []keydir.Problem) []keydir.Problem {
	if !c.storeCopy {
		return problems
	}
	return slices.DeleteFunc(slices.Clone(problems), func(p keydir.Problem) bool {
		return strings.HasPrefix(filepath.Base(p.Path), syncOwnPrefix+"unmirrorable-")
	})
}

// storeKindCommand is the command that edits entries of kind.
func storeKindCommand(kind string) string {
	switch kind {
	case StoreAuthorized:
		return "authorize"
	case StoreRevoked:
		return "revoke"
	}
	return "trust-host"
}

// removeUnheldCommand is the command that removes the store's entry name
// of kind, which the copy does not hold: printable as it is (a name with
// a control character is shown quoted, not sent to the terminal).
func (c *cli) removeUnheldCommand(kind, name string) string {
	return termtext.Safe(c.command(storeKindCommand(kind), "--remove", shellQuote(name)))
}

// removeUnheld removes from the store, with the command's other changes,
// the entries of kind the copy does not hold that arg names: the entry
// arg, or arg.json (the file authorize and trust-host give a name or an
// address: NAME.json, HOST_PORT.json). It removes their notes and
// stand-ins from the copy, and the entry is removed only if it is still
// at the revision its note says (Apply). It says whether it removed any;
// that it did is printed once the removal is written (inStore), not if
// the command then fails: a note removed from the copy is no entry
// removed from the store.
func (c *cli) removeUnheld(kind, arg string) (bool, error) {
	if !c.storeCopy || arg == "" {
		return false, nil
	}
	h := home.Dir(c.home)
	names := []string{arg, arg + ".json"}
	if kind == StoreTrusted {
		if f, err := knownhosts.FileName(arg); err == nil {
			names = append(names, f)
		}
	}
	removed := false
	for _, name := range names {
		n, ok := noteFor(h, kind, name)
		if !ok || slices.ContainsFunc(c.storeRemovals, func(r StoreChange) bool { return r.Kind == kind && r.Name == name }) {
			continue
		}
		if kind == StoreRevoked {
			// Its stand-in, which refuses every key, goes with it.
			stand := filepath.Join(string(h), unmirrorableRevocation(name, "").rel)
			if err := keydir.RemoveFile(stand); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, err
			}
		}
		if err := keydir.RemoveFile(filepath.Join(string(h), noteRel(kind, name))); err != nil {
			return removed, err
		}
		c.storeRemovals = append(c.storeRemovals, StoreChange{Kind: kind, Name: name, Revision: n.Revision})
		fmt.Fprintf(c.storeRemoved, "Removed %s/%s (%s: the stores reading the store did not take it)\n", kindDir(h, kind), termtext.Safe(name), n.Why)
		removed = true
	}
	return removed, nil
}

// unheldWrittenOver refuses a change that writes an entry the copy does
// not hold (its note): the command did not see it, and would write over
// it. On the mirror, readChanges refuses it first (notHeld, from the
// store's entry itself); on a temporary copy, the transaction's
// create-only condition would refuse it only as a conflict.
func unheldWrittenOver(h home.Dir, changes []StoreChange) error {
	for _, ch := range changes {
		if ch.Value == nil {
			continue
		}
		if n, ok := noteFor(h, ch.Kind, ch.Name); ok {
			return &HiddenEntryError{Kind: ch.Kind, Name: ch.Name, Why: n.Why, Size: n.Size, Max: n.Max}
		}
	}
	return nil
}

// ownRemovals leaves out of changes the removal of the stand-ins of the
// entries the command removes (removeUnheld): the stand-in is the copy's,
// no entry of the store; the entry's own removal is among removals.
func ownRemovals(changes, removals []StoreChange) []StoreChange {
	return slices.DeleteFunc(changes, func(ch StoreChange) bool {
		return ch.Value == nil && ch.Kind == StoreRevoked && slices.ContainsFunc(removals, func(r StoreChange) bool {
			return r.Kind == StoreRevoked && StoreRevoked+".d/"+ch.Name == unmirrorableRevocation(r.Name, "").rel
		})
	})
}
