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
