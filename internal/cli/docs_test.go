package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
			for _, tool := range tools {
				if _, err := exec.LookPath(tool); err != nil {
					t.Skipf("%s needs %s, which is not installed (.ci/run installs it)", page, tool)
				}
			}
			dir := t.TempDir()
			cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "KEYTOOL_HOME="+filepath.Join(dir, "home"), "HOME="+dir)
			// The script and whatever it starts in the background (a proxy,
			// a web server) form one process group, ended with the script:
			// an example that fails half-way must not leave a server behind
			// holding the output pipe.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.WaitDelay = 5 * time.Second
			defer func() {
				if cmd.Process != nil {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				}
			}()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the examples of %s failed: %v\n%s", page, err, out)
			}
		})
	}
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
