package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/dnstest"
	"github.com/keytool/keytool/internal/toolpath"
)

// TestDocs runs the examples in README.md (the tour) and docs/*.md, so the
// documentation cannot drift from what keytool does. Every ```sh block of a page runs, in order,
// in one bash script with `set -euo pipefail`, in a fresh directory with
// KEYTOOL_HOME set and keytool (this test binary, see TestMain) in PATH. A
// block asserts what it shows with `test`, `grep` and the like. In a
// pipeline, `grep PATTERN >/dev/null` rather than `grep -q`: grep -q exits
// at the first match, the writer then dies of SIGPIPE, and pipefail fails
// the example now and then. Blocks fenced as ```console are illustrations
// and do not run. A line that builds keytool (`go build … ./cmd/keytool`,
// as the README's tour does) is left out: this binary already is keytool.
func TestDocs(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../../README.md")
	for _, page := range pages {
		script, tools := shellBlocks(t, page)
		if script == "" {
			continue
		}
		t.Run(filepath.Base(page), func(t *testing.T) {
			if strings.Contains(script, "| grep -q") {
				t.Fatalf("%s pipes into grep -q, which makes the example fail at random under pipefail (SIGPIPE); use grep PATTERN >/dev/null", page)
			}
			path, err := docsPath(tools)
			if err != nil {
				t.Skipf("SKIPPED, NOT PASSED: %s needs %v (.ci/run installs it)", page, err)
			}
			dir := t.TempDir()
			cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "KEYTOOL_HOME="+filepath.Join(dir, "home"), "HOME="+dir, "PATH="+path)
			// The script and whatever it starts in the background (a proxy,
			// a web server) form one process group, ended with the script:
			// an example that fails half-way must not leave a server behind
			// holding the output pipe.
			ownGroup(cmd)
			cmd.WaitDelay = 5 * time.Second
			defer func() {
				if cmd.Process != nil {
					killGroup(cmd)
				}
			}()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the examples of %s failed: %v\n%s", page, err, out)
			}
		})
	}
}

// docsPath is the PATH the examples of a page run with: the test's, and
// the directories of the tools the page needs that are found outside it.
// Tools are found as the tests that run them find them (internal/toolpath:
// nsd and unbound live in /usr/sbin, which the PATH of a user other than
// root lacks), so that a page is never skipped for a tool the other tests
// use. The error names a tool that is not installed.
func docsPath(tools []string) (string, error) {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	for _, tool := range tools {
		p, err := toolpath.Find(tool)
		if err != nil {
			return "", err
		}
		if dir := filepath.Dir(p); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return strings.Join(dirs, string(filepath.ListSeparator)), nil
}

// shellBlocks returns the ```sh blocks of a Markdown page joined into one
// script, and the tools the page declares it needs in a comment line
// "<!-- needs: openssl ssh-keygen -->".
func shellBlocks(t *testing.T, page string) (string, []string) {
	f, err := os.Open(page)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		script strings.Builder
		tools  []string
		in     bool
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !in && strings.HasPrefix(line, "<!-- needs:"):
			tools = append(tools, strings.Fields(strings.TrimSuffix(strings.TrimPrefix(line, "<!-- needs:"), "-->"))...)
		case !in && strings.TrimSpace(line) == "```sh":
			in = true
			script.WriteString("# " + page + ":" + strconv.Itoa(n) + "\n")
		case in && strings.TrimSpace(line) == "```":
			in = false
		case in && strings.HasPrefix(line, "go build ") && strings.HasSuffix(line, "./cmd/keytool"):
			script.WriteString(": # " + line + " (the test binary is keytool)\n")
		case in:
			script.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return script.String(), tools
}

// TestDocsFindsSbinTools: for a user whose PATH lacks the sbin
// directories (anyone but root, on Debian), the tools of docs/dns.md (nsd
// and unbound, in /usr/sbin) are still found, as internal/dnstest finds
// them, and the examples run with their directory in PATH: the page is
// not skipped.
func TestDocsFindsSbinTools(t *testing.T) {
	dnstest.Require(t)
	nsd, err := toolpath.Find("nsd")
	if err != nil {
		t.Fatal(err)
	}
	var userPath []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if !strings.HasSuffix(dir, "/sbin") {
			userPath = append(userPath, dir)
		}
	}
	t.Setenv("PATH", strings.Join(userPath, string(filepath.ListSeparator)))
	if _, err := exec.LookPath("nsd"); err == nil {
		t.Skip("nsd is installed outside the sbin directories: nothing to show here")
	}
	path, err := docsPath([]string{"nsd", "unbound", "bash"})
	if err != nil {
		t.Fatalf("docs/dns.md would be skipped: %v", err)
	}
	if !slices.Contains(filepath.SplitList(path), filepath.Dir(nsd)) {
		t.Errorf("the examples' PATH %q lacks %s", path, filepath.Dir(nsd))
	}
	out, err := exec.Command("env", "PATH="+path, "bash", "-c", "command -v nsd").Output()
	if err != nil || strings.TrimSpace(string(out)) != nsd {
		t.Errorf("the examples find nsd at %q (%v), want %s", out, err, nsd)
	}
}
