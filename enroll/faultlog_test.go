package enroll

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServerFaultFolded: an invitations directory, or one invitation
// file, that the strict-modes rule refuses is the server's fault, which
// every attempt meets: each made an Error line and a refusal line in
// full, so that any peer could write the server's log at line rate
// (found by review). Now it is one Error line in full, then a count per
// interval (faillog, as one source's: "all" — no peer's doing), and no
// refusal line of its own. The attempts are not charged (the right
// token enrolls once the fault is fixed, TestRateLimitOnlyFailuresCount).
// An invitation file refused is answered as an unknown invitation, in the
// same words as a name never made: a 500 naming it told any peer which
// names the server holds.
func TestServerFaultFolded(t *testing.T) {
	t0 := time.Now()
	f := newFailure(t, serverConfig{now: func() time.Time { return t0 }, limits: Limits{PerAddressBurst: 2}})
	f.srv.handler.limited.SetInterval(time.Hour) // counted until flushed
	dir := InvitesDir(f.srvHome.dir)
	const n = 6 // more than the burst: none is charged

	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var re *RefusedError
		if err := f.join(t, f.tok); !errors.As(err, &re) || re.Reason != ReasonInternal {
			t.Fatalf("attempt %d with the invitations directory open to all: %v", i+1, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}

	unknown := f.tok
	unknown.Name = "never-made"
	_, err := f.cli.join(t, unknown)
	var want *RefusedError
	if !errors.As(err, &want) || want.Reason != ReasonUnknown {
		t.Fatalf("a name never made: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, "laptop.json"), 0o666); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var re *RefusedError
		err := f.join(t, f.tok)
		if !errors.As(err, &re) || re.Status != want.Status || re.Reason != want.Reason ||
			re.Message != strings.ReplaceAll(want.Message, `"never-made"`, `"laptop"`) {
			t.Fatalf("attempt %d with laptop.json open to all: %v; want what a name never made is told: %v", i+1, err, want)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "laptop.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.join(t, f.tok); err != nil {
		t.Fatalf("the right token once fixed, after %d attempts the server failed: %v", 2*n, err)
	}

	f.srv.handler.limited.Flush()
	log := f.srv.log.String()
	for _, msg := range []string{"invitations directory refused", "invitation unreadable"} {
		full := regexp.MustCompile(`level=ERROR msg="`+msg+`" remote=127\.0\.0\.1:\d+ .*error=`).FindAllString(log, -1)
		counts := regexp.MustCompile(`level=ERROR msg="`+msg+`" remote=all error=.* repeated=(\d+) in=`).FindAllStringSubmatch(log, -1)
		counted := 0
		for _, m := range counts {
			c, _ := strconv.Atoi(m[1])
			counted += c
		}
		if len(full) != 1 || counted != n-1 {
			t.Errorf("%d attempts meeting %q: %d lines in full, %d counted; want 1 and %d:\n%s", n, msg, len(full), counted, n-1, log)
		}
	}
	if c := strings.Count(log, "reason=internal"); c != 2 {
		t.Errorf("%d lines say reason=internal, want the two in full:\n%s", c, log)
	}
}

// TestClaimAndAddFaultsFolded: the server's faults met after the secret
// is checked — the claim cannot be made, the claim made cannot be read,
// the key cannot be added — each logged an Error line in full per
// attempt, so that a client holding the right token could write the
// server's log at line rate (found by review; the claim and the add are
// uncharged). They are folded as the other faults are: one line in full,
// then a count (remote=all). The answers are unchanged, but the claimed
// invitation unreadable's: internal, no longer a wrong secret
// (TestUnreadableClaimNotCharged).
func TestClaimAndAddFaultsFolded(t *testing.T) {
	const n = 6
	count := func(t *testing.T, log, msg string) {
		t.Helper()
		full := regexp.MustCompile(`level=ERROR msg="`+msg+`" remote=127\.0\.0\.1:\d+ .*error=`).FindAllString(log, -1)
		counted := 0
		for _, m := range regexp.MustCompile(`level=ERROR msg="`+msg+`" remote=all error=.* repeated=(\d+) in=`).FindAllStringSubmatch(log, -1) {
			c, _ := strconv.Atoi(m[1])
			counted += c
		}
		if len(full) != 1 || counted != n-1 {
			t.Errorf("%d attempts meeting %q: %d lines in full, %d counted; want 1 and %d:\n%s", n, msg, len(full), counted, n-1, log)
		}
	}
	attempts := func(t *testing.T, f *failure, before func(), after func(), reason Reason) {
		t.Helper()
		testHookBeforeClaim = before
		t.Cleanup(func() { testHookBeforeClaim = nil })
		for i := range n {
			_, err := f.cli.join(t, f.tok)
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != reason {
				t.Fatalf("attempt %d: %v; want %s\n%s", i+1, err, reason, f.srv.log)
			}
			after()
		}
		testHookBeforeClaim = nil
		if _, err := f.cli.join(t, f.tok); err != nil {
			t.Fatalf("the right token once fixed: %v\n%s", err, f.srv.log)
		}
		f.srv.handler.limited.Flush()
	}
	limits := Limits{PerAddressBurst: 100, GlobalBurst: 100}

	t.Run("claim", func(t *testing.T) {
		f := newFailure(t, serverConfig{limits: limits})
		f.srv.handler.limited.SetInterval(time.Hour)
		used := filepath.Join(InvitesDir(f.srvHome.dir), usedDir)
		// used/ is made a file after the directory's check: the claim
		// cannot be made in it.
		attempts(t, f, func() {
			if err := os.RemoveAll(used); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(used, nil, 0o600); err != nil {
				t.Error(err)
			}
		}, func() {
			if err := os.Remove(used); err != nil {
				t.Fatal(err)
			}
		}, ReasonInternal)
		count(t, f.srv.log.String(), "claiming an invitation")
	})

	t.Run("claimed unreadable", func(t *testing.T) {
		f := newFailure(t, serverConfig{limits: limits})
		f.srv.handler.limited.SetInterval(time.Hour)
		pending := filepath.Join(InvitesDir(f.srvHome.dir), "laptop.json")
		// The pending file, read, is opened to all before it is claimed:
		// the claim, the same file, is refused by the strict-modes rule.
		attempts(t, f, func() {
			if err := os.Chmod(pending, 0o666); err != nil {
				t.Error(err)
			}
		}, func() {
			if err := os.Chmod(pending, 0o600); err != nil {
				t.Fatal(err)
			}
		}, ReasonInternal)
		count(t, f.srv.log.String(), "claimed invitation unreadable")
	})

	t.Run("add", func(t *testing.T) {
		store := &failingStore{}
		store.fail.Store(n)
		f := &failure{srvHome: newHome(t), cli: newHome(t)}
		f.srv = startServer(t, f.srvHome, serverConfig{limits: limits, store: func(c ClientStore) ClientStore { store.ClientStore = c; return store }})
		f.tok = f.srvHome.invite(t, "laptop", f.srv.addr)
		f.srv.handler.limited.SetInterval(time.Hour)
		attempts(t, f, nil, func() {}, ReasonInternal)
		count(t, f.srv.log.String(), "adding an enrolled key")
	})
}
