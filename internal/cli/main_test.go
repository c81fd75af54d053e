package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/scripttest"
)

// TestMain lets the test binary act as the keytool command: testscript puts
// a copy named "keytool" first in PATH, so scripts and tests run keytool as
// a real process.
func TestMain(m *testing.M) {
	// Under -race, every process sleeps a second at exit unless told not
	// to; the suite runs hundreds of keytool processes.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	if _, ok := os.LookupEnv(dnsSearchEnv); !ok {
		os.Setenv(dnsSearchEnv, "")
	}
	dnsSearch = testSearchList(os.Getenv(dnsSearchEnv))
	testscript.Main(m, map[string]func(){
		"keytool": func() {
			holdAt(os.Getenv(holdEnv))
			os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// holdEnv, in a test's keytool process, names a step of one of its
// writes, "N:STEP" (the Nth write, from 1; a step of atomicfile's): the
// process stops there, says so on stderr (holdingLine, then the path
// written), and waits to be killed. TestKillAtEveryWrite kills it there.
const holdEnv = "KEYTOOL_TEST_HOLD"

const holdingLine = "keytool-test: holding at "

// holdAt sets atomicfile.Hook to stop the process at the write and step
// that v names (holdEnv); an empty v changes nothing.
func holdAt(v string) {
	if v == "" {
		return
	}
	nth, step, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(nth)
	if !ok || err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "%s=%q: want N:STEP\n", holdEnv, v)
		os.Exit(2)
	}
	var mu sync.Mutex
	writes := 0
	// The number of each path's latest write: a write of many files at
	// once (atomicfile.CreateAll) makes them all before it places any.
	number := map[string]int{}
	atomicfile.Hook = func(s, path string) {
		mu.Lock()
		if s == atomicfile.StepCreated {
			writes++
			number[path] = writes
		}
		hold := number[path] == n && s == step
		if !hold {
			mu.Unlock()
			return
		}
		fmt.Fprintf(os.Stderr, "%s%s of write %d: %s\n", holdingLine, s, n, path)
		time.Sleep(time.Hour) // with mu held: no other write goes on
	}
}

// dnsSearchEnv is the search list the tests' keytool processes, and run
// in the test process, take a relative host name to be resolved with
// (dnsSearch): domains separated by blanks. TestMain sets it empty unless
// it is set, so that the DNS tests, which dial the relative name
// localhost, decide alike whatever the machine's resolv.conf, LOCALDOMAIN
// or host name say — with a search list, DNS is not asked about a
// relative name (docs/dns.md, "Relative names"). They cannot dial the
// rooted localhost. instead: neither Go nor glibc finds a rooted
// single-label name in /etc/hosts. A test sets it (t.Setenv) to see a
// search list.
const dnsSearchEnv = "KEYTOOL_TEST_DNS_SEARCH"

// testSearchList reads dnsSearchEnv's value.
func testSearchList(v string) *dane.SearchList {
	l := &dane.SearchList{Ndots: 1}
	for _, d := range strings.Fields(v) {
		l.Domains = append(l.Domains, strings.TrimSuffix(d, ".")+".")
	}
	return l
}

// TestScripts runs testdata/script/*.txt: the everyday flows, written to be
// read as documentation of each command.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			// testscript's HOME, /no-home, is one path for every script
			// and every run on the machine: a default home (~/.keytool)
			// one made there stayed for the next (found when an edit with
			// --store used a mirror in /no-home/.keytool, not the
			// temporary copy store-interrupted.txt looks for). A home of
			// the script's own, not there either, is that no-home.
			env.Setenv("HOME", filepath.Join(env.WorkDir, ".no-home"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mode":      scripttest.Mode,
			"exits":     cmdExits,
			"sleep":     cmdSleep,
			"capture":   cmdCapture,
			"setenv":    cmdSetenv,
			"unescape":  cmdUnescape,
			"maxwidth":  cmdMaxWidth,
			"freeport":  scripttest.FreePort,
			"listening": scripttest.Listening,
			"presents":  cmdPresents,
			"announces": cmdAnnounces,
			"names":     cmdNames,
		},
		Condition: func(cond string) (bool, error) {
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// sleep DURATION waits, e.g. for a short-lived invitation to expire.
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

// capture REGEXP FILE writes to FILE the text that REGEXP's first group
// matches in the last command's standard output, e.g. a fingerprint, so
// that cmp can compare it with another command's. REGEXP must match
// exactly once.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: capture REGEXP FILE")
	}
	re, err := regexp.Compile(`(?m)` + args[0])
	ts.Check(err)
	if re.NumSubexp() < 1 {
		ts.Fatalf("capture: %q has no group", args[0])
	}
	m := re.FindAllStringSubmatch(ts.ReadFile("stdout"), -1)
	if len(m) != 1 {
		ts.Fatalf("capture: %q matches stdout %d times, want once", args[0], len(m))
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(m[0][1]+"\n"), 0o644))
}

// setenv VAR REGEXP sets VAR to the text that REGEXP's first group
// matches in the last command's standard output (as capture does), e.g. a
// fingerprint a later command takes as an argument.
func cmdSetenv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setenv VAR REGEXP")
	}
	re, err := regexp.Compile(`(?m)` + args[1])
	ts.Check(err)
	m := re.FindAllStringSubmatch(ts.ReadFile("stdout"), -1)
	if len(m) != 1 || len(m[0]) < 2 {
		ts.Fatalf("setenv: %q matches stdout %d times, want once, with a group", args[1], len(m))
	}
	ts.Setenv(args[0], m[0][1])
}

// unescape VAR TEXT sets VAR to TEXT with Go's escapes read (\u200b,
// \u202e, \x1b), so that a script passes a character it cannot show, and
// does not hold it raw.
func cmdUnescape(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: unescape VAR TEXT")
	}
	s, err := strconv.Unquote(`"` + args[1] + `"`)
	ts.Check(err)
	ts.Setenv(args[0], s)
}

// maxwidth N stdout|stderr asserts that no line of the last command's
// output is longer than N characters (runes), e.g. "maxwidth 80 stdout"
// for a table that must fit a terminal; "! maxwidth N" that one is.
func cmdMaxWidth(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: maxwidth N stdout|stderr")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	for i, line := range strings.Split(ts.ReadFile(args[1]), "\n") {
		if w := utf8.RuneCountInString(line); w > n {
			if neg {
				return
			}
			ts.Fatalf("%s line %d is %d characters wide, over %d:\n%s", args[1], i+1, w, n, line)
		}
	}
	if neg {
		ts.Fatalf("no line of %s is wider than %d", args[1], n)
	}
}

// exits CODE PROG ARGS… runs a program and asserts its exit status (exec
// only tells zero from non-zero; usage errors must be 2, others 1).
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// oneTypoApart: one byte inserted, deleted or replaced, or two neighbours
// swapped — and nothing more, nor the same name.
func TestOneTypoApart(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"gne", "gen", true}, {"ge", "gen", true}, {"gen2", "gen", true}, {"gan", "gen", true},
		{"shwo", "show", true}, {"lsit", "list", true}, {"list", "lits", true},
		{"gen", "gen", false}, {"g", "gen", false}, {"nge", "gen", false}, {"", "gen", false},
		{"authorise", "authorize", true}, {"autorise", "authorize", false}, {"revoek", "revoke", true},
	} {
		if got := oneTypoApart(c.a, c.b); got != c.want {
			t.Errorf("oneTypoApart(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := oneTypoApart(c.b, c.a); got != c.want {
			t.Errorf("oneTypoApart(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

// indexSmallHomes has the commands a test runs in this process keep an
// admin index for a directory of two files or more (keydir.IndexMinFiles,
// 1,000 otherwise), so that a home of a few entries is loaded narrowed
// as a large one is; put back when the test ends.
func indexSmallHomes(t *testing.T) {
	saved := keydir.IndexMinFiles
	keydir.IndexMinFiles = 2
	t.Cleanup(func() { keydir.IndexMinFiles = saved })
}
