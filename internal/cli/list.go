package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/spf13/pflag"
)

// termWidth is the width every table fits unless --long or --full is
// given: the 80 columns of a terminal nobody resized.
const termWidth = 80

// listFlags are the flags every --list shares (and keytool list).
type listFlags struct {
	json bool // every field in full, as JSON: the interface for scripts
	long bool // add the COMMENT and FILE columns; no width limit
	full bool // whole fingerprints; no width limit
}

// register adds --json, -l/--long and --full to a command's flags; what
// is "with --list" for the commands that also add, remove or revoke.
func (lf *listFlags) register(set *pflag.FlagSet, with string) {
	set.BoolVar(&lf.json, "json", false, with+"print JSON (every field in full)")
	set.BoolVarP(&lf.long, "long", "l", false, with+"more columns: COMMENT, FILE… (rows may pass 80 columns)")
	set.BoolVar(&lf.full, "full", false, with+"show whole fingerprints (rows may pass 80 columns)")
}

// given reports whether any of the flags was given.
func (lf listFlags) given() bool { return lf.json || lf.long || lf.full }

// width is the width a table must fit: none with --long or --full.
func (lf listFlags) width() int {
	if lf.long || lf.full {
		return 0
	}
	return termWidth
}

// fingerprint shows fp whole with --full, else short: "SHA256:" and the
// first 12 characters of the hash, then "…" — enough to tell keys apart
// at a glance and to find the whole one in --json or --full.
func (lf listFlags) fingerprint(fp string) string {
	if lf.full || fp == "" {
		return fp
	}
	const keep = len("SHA256:") + 12
	if utf8.RuneCountInString(fp) <= keep+1 {
		return fp
	}
	return fp[:keep] + "…"
}

// cutShort reports whether q is a fingerprint as tables print it:
// SHA256: and its first characters, then "…".
func cutShort(q string) bool { return strings.HasPrefix(q, "SHA256:") && strings.HasSuffix(q, "…") }

// shortenedHint says, when query is a fingerprint as a table shortens it
// (listFlags.fingerprint), that it names no key and how to list the whole
// ones (list, the command whose --full prints them), or "" for any other
// query: copied from a table into --remove, it would otherwise be answered
// "not found", or "not a key fingerprint", with nothing about the "…".
func (c *cli) shortenedHint(query string, list ...string) string {
	if !cutShort(query) {
		return ""
	}
	return fmt.Sprintf("%q is cut short, as tables print fingerprints; see them whole with: %s",
		query, c.command(append(list, "--full")...))
}

// A column of a table. An elastic column gives way, its long values
// elided with "…", when a row would not fit the width; fromLeft elides
// the start instead of the end (a path, whose end says the most).
type column struct {
	title    string
	elastic  bool
	fromLeft bool
}

// table is a listing: aligned columns separated by two spaces, fitted to
// a width. Its rows are those added, or those each yields: a store's
// listing, made again for each pass over it (the columns' widths, then
// the lines) rather than held — a million rows of strings were 1.3 GB
// (docs/benchmarks.md, "Listing a million keys").
type table struct {
	cols []column
	rows [][]string
	each iter.Seq[[]string]
}

func newTable(cols ...column) *table { return &table{cols: cols} }

// add appends a row; values read from files must have gone through
// printable.
func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// all yields the rows.
func (t *table) all(yield func([]string) bool) {
	if t.each != nil {
		t.each(yield)
		return
	}
	for _, r := range t.rows {
		if !yield(r) {
			return
		}
	}
}

// empty reports whether the table has no row.
func (t *table) empty() bool {
	for range t.all {
		return false
	}
	return true
}

// write prints the table so that no row is wider than width (0: any
// width): the widest elastic column gives way one column at a time, down
// to the width of its title.
func (t *table) write(w io.Writer, width int) error {
	widths := make([]int, len(t.cols))
	for i, col := range t.cols {
		widths[i] = textWidth(col.title)
	}
	for r := range t.all {
		for i := range widths {
			widths[i] = max(widths[i], textWidth(r[i]))
		}
	}
	for width > 0 && sum(widths)+2*(len(widths)-1) > width {
		widest := -1
		for i, col := range t.cols {
			if col.elastic && widths[i] > max(textWidth(col.title), 2) && (widest < 0 || widths[i] > widths[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break // nothing left to give way
		}
		widths[widest]--
	}
	bw := bufio.NewWriter(w) // a line a write was a system call a row
	var b strings.Builder
	line := func(cells []string) {
		b.Reset()
		for i, cell := range cells {
			cell = elide(cell, widths[i], t.cols[i].fromLeft)
			b.WriteString(cell)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-textWidth(cell)+2))
			}
		}
		b.WriteByte('\n')
		bw.WriteString(b.String())
	}
	titles := make([]string, len(t.cols))
	for i, col := range t.cols {
		titles[i] = col.title
	}
	line(titles)
	for r := range t.all {
		line(r)
	}
	return bw.Flush()
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// elide shortens s to width columns, "…" standing for what is left out.
func elide(s string, width int, fromLeft bool) string {
	if textWidth(s) <= width {
		return s
	}
	runes := []rune(s)
	kept, w := 0, 1 // the "…"
	for kept < len(runes) {
		r := runes[kept]
		if fromLeft {
			r = runes[len(runes)-1-kept]
		}
		if w+runeWidth(r) > width {
			break
		}
		w += runeWidth(r)
		kept++
	}
	if fromLeft {
		return "…" + string(runes[len(runes)-kept:])
	}
	return string(runes[:kept]) + "…"
}

// textWidth is the number of terminal columns s takes: printable text
// (see printable), wide East Asian characters taking two.
func textWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

func runeWidth(r rune) int {
	switch {
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	case r >= 0x1100 && (r <= 0x115f || // Hangul Jamo
		r >= 0x2e80 && r <= 0xa4cf && r != 0x303f || // CJK … Yi
		r >= 0xac00 && r <= 0xd7a3 || // Hangul syllables
		r >= 0xf900 && r <= 0xfaff || // CJK compatibility ideographs
		r >= 0xfe30 && r <= 0xfe4f || // CJK compatibility forms
		r >= 0xff00 && r <= 0xff60 || r >= 0xffe0 && r <= 0xffe6 || // fullwidth forms
		r >= 0x1f300 && r <= 0x1f64f || r >= 0x1f900 && r <= 0x1f9ff || // emoji
		r >= 0x20000 && r <= 0x3fffd): // CJK extensions
		return 2
	}
	return 1
}

// printList prints the listing of a --list option: the items as a JSON
// array with --json (a stable interface for scripts); else, when there are
// no rows, the hint on standard error; else the table, fitted to 80
// columns unless --long or --full.
func (c *cli) printList(lf listFlags, items any, t *table, hint string) error {
	if lf.json {
		if seq, ok := items.(jsonArray); ok {
			bw := bufio.NewWriter(c.stdout)
			if err := seq.writeJSON(bw, ""); err != nil {
				return err
			}
			bw.WriteString("\n")
			return bw.Flush()
		}
		return c.printJSON(items)
	}
	empty := t.empty()
	if empty && c.skipped > 0 {
		// What the files skipped hold is unknown: "add one" could make a
		// second entry for a key that is there, and hides the problem.
		fmt.Fprintln(c.stderr, "Nothing to list, but files were skipped (above): fix them, then list again.")
		return nil
	}
	if empty {
		fmt.Fprintln(c.stderr, hint)
		return nil
	}
	return t.write(c.stdout, lf.width())
}

// eachOf yields f of each item of seq: a listing's JSON items or table
// rows, made as a pass over them asks (jsonSeq, table.each).
func eachOf[T, U any](seq iter.Seq[T], f func(T) U) iter.Seq[U] {
	return func(yield func(U) bool) {
		for x := range seq {
			if !yield(f(x)) {
				return
			}
		}
	}
}

// jsonArray is a list printed as a JSON array one item at a time, at
// the indent of its place (prefix: "" for an array alone, "  " for a
// member of an object), with no newline after it.
type jsonArray interface {
	writeJSON(w *bufio.Writer, prefix string) error
}

// jsonSeq is the items of a --list --json, made one at a time: printed
// as printJSON prints a slice of them, byte for byte, without the slice.
type jsonSeq[T any] iter.Seq[T]

func (s jsonSeq[T]) writeJSON(w *bufio.Writer, prefix string) error {
	first := "[\n" + prefix + "  "
	sep := first
	for item := range s {
		out, err := json.MarshalIndent(item, prefix+"  ", "  ")
		if err != nil {
			return err
		}
		w.WriteString(sep)
		w.Write(out)
		sep = ",\n" + prefix + "  "
	}
	if sep == first {
		w.WriteString("[]")
	} else {
		w.WriteString("\n" + prefix + "]")
	}
	return nil
}

// printObject prints v, a pointer to a struct, as printJSON prints it,
// byte for byte, but each member whose JSON name is in arrays from that
// jsonArray, one item at a time: keytool list --json of a million keys
// holds none of their items, nor the text of them all. A member with a
// JSON option (omitempty) or embedded is refused: its rule would have to
// be here.
func (c *cli) printObject(v any, arrays map[string]jsonArray) error {
	rv := reflect.ValueOf(v).Elem()
	bw := bufio.NewWriter(c.stdout)
	sep := "{\n  "
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous || opts != "" && name != "-" {
			return fmt.Errorf("cli: printObject: member %s is embedded or has a JSON option (%q)", f.Name, opts)
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		key, err := json.Marshal(name)
		if err != nil {
			return err
		}
		bw.WriteString(sep)
		bw.Write(key)
		bw.WriteString(": ")
		if a, ok := arrays[name]; ok {
			err = a.writeJSON(bw, "  ")
		} else {
			var out []byte
			out, err = json.MarshalIndent(rv.Field(i).Interface(), "  ", "  ")
			bw.Write(out)
		}
		if err != nil {
			return err
		}
		sep = ",\n  "
	}
	if sep == "{\n  " {
		bw.WriteString("{}\n")
	} else {
		bw.WriteString("\n}\n")
	}
	return bw.Flush()
}

func (c *cli) printJSON(v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\n", out)
	return nil
}

// listOrRemove is the dispatch authorize, revoke and trust-host share:
// --list [--json|--long|--full] lists, --remove removes, and neither goes
// with anything else (others: arguments or flags of the command's main
// mode). It reports whether one of them ran, and its error.
func listOrRemove(list bool, lf listFlags, removing, others bool, doList func(listFlags) error, doRemove func() error) (bool, error) {
	switch {
	case list && removing:
		return true, usagef("--list and --remove cannot be combined")
	case lf.given() && !list:
		return true, usagef("--json, --long and --full go with --list")
	case (list || removing) && others:
		return true, usagef("--list and --remove take no other argument or flag")
	case list:
		return true, doList(lf)
	case removing:
		return true, doRemove()
	}
	return false, nil
}

// saidOnlyIfWritten runs a removal command's work. On a store, where a
// command that fails writes nothing back (inStore), the lines it printed
// of what it removed from the store's copy are said only if it succeeded;
// else a note says that nothing was written, since every removal of a
// repeated --remove is then undone with the one that failed (found by
// review: "Unpinned A" was printed, A still pinned in the store).
func (c *cli) saidOnlyIfWritten(name string, work func() error) error {
	if !c.storeCopy {
		return work()
	}
	out := c.stdout
	var said bytes.Buffer
	c.stdout = &said
	err := work()
	c.stdout = out
	if err == nil {
		_, err = said.WriteTo(out)
		return err
	}
	if said.Len() > 0 {
		fmt.Fprintf(c.stderr, "keytool %s: nothing was written to the store: a command that fails changes nothing there; run it again without what failed\n", name)
	}
	return err
}

// sayEach is the outcome of a command that did several things, one error
// (or nil) each (a repeated --remove): for one, its error as it is; for
// several, each error said with its advice, the others done all the
// same, and exit 2 if one was bad usage (a value refused as it is: a
// fingerprint cut short), else 1 if any failed.
func (c *cli) sayEach(name string, errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	code := 0
	for _, err := range errs {
		var (
			ee *exitError
			ue *usageError
		)
		switch {
		case err == nil:
		case errors.As(err, &ue):
			fmt.Fprintf(c.stderr, "keytool %s: %v\n", name, err)
			code = 2
		case errors.As(err, &ee):
			code = max(code, 1) // said already
		default:
			fmt.Fprintf(c.stderr, "keytool %s: %s\n", name, c.advise(err))
			code = max(code, 1)
		}
	}
	if code != 0 {
		return &exitError{code}
	}
	return nil
}

// maxSkippedShown is how many skipped files a command names before it
// counts the rest: a directory of 30,000 files made unreadable at once
// (a chmod, a bad deploy) printed 60,000 lines before the command's own
// message. keytool list names them all.
const maxSkippedShown = 20

// reportSkipped prints, one line each, the trust files a store skipped,
// each with the command that fixes it when there is one; past
// maxSkippedShown, how many more there are and where they are listed.
// The revocation inputs come first, as in the proxy's log: one of them
// unreadable is why every key is refused.
func reportSkipped[P error](c *cli, cmd string, problems []P) {
	c.skipped += len(problems)
	revocation := func(p P) bool {
		var kp keydir.Problem
		return errors.As(p, &kp) && kp.Revocation
	}
	problems = slices.Clone(problems)
	slices.SortStableFunc(problems, func(a, b P) int {
		switch ra, rb := revocation(a), revocation(b); {
		case ra && !rb:
			return -1
		case rb && !ra:
			return 1
		}
		return 0
	})
	for i, p := range problems {
		if i == maxSkippedShown {
			fmt.Fprintf(c.stderr, "keytool %s: skipped %d more files and entries: %s lists them all\n", cmd, len(problems)-i, c.command("list"))
			break
		}
		// The file's name and what the message quotes of it are the
		// file's, not to drive the terminal (termtext), as list's.
		fmt.Fprintf(c.stderr, "keytool %s: skipped %s\n", cmd, termtext.SafeLines(p.Error()))
		if fix := c.fileFix(p); fix != "" {
			fmt.Fprintf(c.stderr, "  fix with: %s\n", termtext.Safe(fix))
		}
	}
}

// skippedFiles names n files a store skips, and what to do, for an error
// that says a key may be in them: "the file it skips" and "fix that file",
// or "the N files it skips" and "fix them".
func skippedFiles(n int) (files, fix string) {
	if n > 1 {
		return fmt.Sprintf("the %d files it skips", n), "fix them"
	}
	return "the file it skips", "fix that file"
}
