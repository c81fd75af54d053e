package cli

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spf13/pflag"
)

// TestManWritesNoLink: __man replaces a page name that is a symbolic
// link rather than writing through it — the pages go where a packager
// says, /tmp/man as like as not, where another user may have put
// keytool.1 -> a file of the packager's first (found by review: os.WriteFile
// followed it, and a packager running as root overwrote its target).
func TestManWritesNoLink(t *testing.T) {
	dir, victim := t.TempDir(), filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "keytool.1")); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"__man", dir}, nil, io.Discard, &stderr); code != 0 {
		t.Fatalf("keytool __man exited %d: %s", code, stderr.String())
	}
	if data, err := os.ReadFile(victim); err != nil || string(data) != "kept\n" {
		t.Errorf("the link's target was written: %q, %v", data, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "keytool.1")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("keytool.1: %v, %v; want a regular file, mode 0644", fi, err)
	}
}

// TestManPages: the pages committed in man/ are what keytool __man makes
// from the commands' --help now, so that the two cannot disagree. After
// changing a command's help or flags: go generate ./cmd/keytool.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	if code := run([]string{"__man", dir}, nil, io.Discard, &stderr); code != 0 {
		t.Fatalf("keytool __man exited %d: %s", code, stderr.String())
	}
	made, committed := readPages(t, dir), readPages(t, filepath.Join("..", "..", "man"))
	for name, page := range made {
		if committed[name] != page {
			t.Errorf("man/%s is not what keytool __man makes from --help now: run go generate ./cmd/keytool", name)
		}
	}
	for name := range committed {
		if _, ok := made[name]; !ok {
			t.Errorf("man/%s is no command's page: delete it, and run go generate ./cmd/keytool", name)
		}
	}
	for name, cmd := range newCommands() {
		if _, ok := made["keytool-"+name+".1"]; ok == cmd.hidden {
			t.Errorf("command %s (hidden: %v) has page: %v", name, cmd.hidden, ok)
		}
	}

	// groff reads every page without a warning, and each page shows the
	// command's summary and every flag its --help shows.
	var names []string
	for name := range made {
		names = append(names, filepath.Join(dir, name))
	}
	out, err := exec.Command("groff", append([]string{"-man", "-ww", "-z", "-Tutf8"}, names...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("groff -ww (installed by .ci/run): %v\n%s", err, out)
	}
	for name, cmd := range newCommands() {
		if cmd.hidden {
			continue
		}
		text := renderPage(t, filepath.Join(dir, "keytool-"+name+".1"))
		if !strings.Contains(text, cmd.summary) {
			t.Errorf("keytool-%s(1) does not show the summary %q:\n%s", name, cmd.summary, text)
		}
		for _, flag := range shownFlags(cmd, true) {
			if !strings.Contains(text, flag.usage) || !hasFlag(text, flag.name) {
				t.Errorf("keytool-%s(1) does not show --%s (%q):\n%s", name, flag.name, flag.usage, text)
			}
		}
	}
	if text := renderPage(t, filepath.Join(dir, "keytool.1")); !strings.Contains(text, "keytool-trust-host(1)") || !hasFlag(text, "strict-host-keys") {
		t.Errorf("keytool(1) lists neither the commands nor the global flags:\n%s", text)
	}
}

// renderPage is a page as man shows it, as plain text on long lines, with
// runs of blanks made one.
func renderPage(t *testing.T, page string) string {
	t.Helper()
	out, err := exec.Command("groff", "-man", "-Tutf8", "-P-cbou", "-rLL=1000n", "-rHY=0", page).Output()
	if err != nil {
		t.Fatalf("groff %s: %v", page, err)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

type shownFlag struct{ name, usage string }

// shownFlags are the flags cmd's --help shows (the global ones among them
// if globals), with their usage as --help prints it.
func shownFlags(cmd *command, globals bool) []shownFlag {
	fs := pflag.NewFlagSet(cmd.name, pflag.ContinueOnError)
	(&cli{}).commandFlags(fs, cmd)
	var out []shownFlag
	fs.VisitAll(func(f *pflag.Flag) {
		if _, global := globalFlagUse[f.Name]; f.Hidden || f.Name == "help" || global && !globals {
			return
		}
		_, usage := pflag.UnquoteUsage(f)
		out = append(out, shownFlag{f.Name, strings.Join(strings.Fields(usage), " ")})
	})
	return out
}

// hasFlag reports whether text spells --name as a flag of its own.
func hasFlag(text, name string) bool {
	return regexp.MustCompile(`(^|[^\w-])--` + regexp.QuoteMeta(name) + `([^\w-]|$)`).MatchString(text)
}

func readPages(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.1"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no pages in %s (%v)", dir, err)
	}
	pages := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pages[filepath.Base(f)] = string(data)
	}
	return pages
}

// TestCLIDocsCoverEveryCommand: docs/cli.md has a section "## NAME — …" for
// every command, which mentions each of the command's own flags, and its
// "Global flags" section mentions every global one: the page cannot lag
// behind --help.
func TestCLIDocsCoverEveryCommand(t *testing.T) {
	sections := markdownSections(t, filepath.Join("..", "..", "docs", "cli.md"))
	for _, global := range shownFlags(versionCommand(), false) {
		t.Fatalf("version has a flag of its own, --%s: shownFlags is broken", global.name)
	}
	for name := range globalFlagUse {
		if !hasFlag(sections["Global flags"], name) {
			t.Errorf("docs/cli.md: the section Global flags does not mention --%s", name)
		}
	}
	for name, cmd := range newCommands() {
		if cmd.hidden {
			continue
		}
		body, ok := "", false
		for heading, b := range sections {
			if strings.HasPrefix(heading, name+" — ") {
				body, ok = b, true
			}
		}
		if !ok {
			t.Errorf("docs/cli.md has no section \"## %s — …\"", name)
			continue
		}
		for _, flag := range shownFlags(cmd, false) {
			if !hasFlag(body, flag.name) {
				t.Errorf("docs/cli.md: the section on %s does not mention --%s (%s)", name, flag.name, flag.usage)
			}
		}
	}
}

// markdownSections maps each "## " heading of a page to the text under it.
func markdownSections(t *testing.T, page string) map[string]string {
	t.Helper()
	f, err := os.Open(page)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sections := map[string]string{}
	heading := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if h, ok := strings.CutPrefix(sc.Text(), "## "); ok {
			heading = h
			continue
		}
		sections[heading] += sc.Text() + "\n"
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sections
}

// TestHelpProseFits80Columns: the prose a command's --help adds (and its
// man page's) is wrapped by hand at 80 columns, like the tables the
// commands print; a line edited without rewrapping shows as one overlong
// line in a terminal. (The synopsis and pflag's flag table are left as
// they come.)
func TestHelpProseFits80Columns(t *testing.T) {
	for name, cmd := range newCommands() {
		for i, line := range strings.Split(cmd.help, "\n") {
			if w := utf8.RuneCountInString(line); w > 80 {
				t.Errorf("keytool %s --help, line %d of its text is %d columns wide, over 80: %q", name, i+1, w, line)
			}
		}
	}
}

// TestFlagsNameTheirValue: every flag that takes a value names it in
// --help (--home DIR, --strict-host-keys POLICY), never with pflag's
// fallback, the Go type ("--update-host-keys string"), which says nothing
// of what to give.
func TestFlagsNameTheirValue(t *testing.T) {
	goTypes := map[string]bool{"string": true, "strings": true, "int": true, "uint": true, "duration": true, "float": true, "stringArray": true}
	for name, cmd := range newCommands() {
		fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
		(&cli{}).commandFlags(fs, cmd)
		fs.VisitAll(func(f *pflag.Flag) {
			if value, _ := pflag.UnquoteUsage(f); goTypes[value] && !f.Hidden {
				t.Errorf("keytool %s --help shows --%s %s: name the value in `backquotes` in its usage", name, f.Name, value)
			}
		})
	}
}
