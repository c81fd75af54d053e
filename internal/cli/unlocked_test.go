package cli

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// Each reason a lock file was not had gets its own fix, with the path
// quoted for a shell as the other advice is; the warning itself is
// shown by testdata/script/authorize-unlocked.txt.
func TestUnlockedFix(t *testing.T) {
	path := "/srv/my home/authorized_keys.d/.keytool.lock"
	quoted := "'" + path + "'"
	for _, c := range []struct {
		u    keydir.UnlockedError
		want string
	}{
		{keydir.UnlockedError{Reason: keydir.LockNotRegular, Mode: fs.ModeDir | 0o700}, "to fix: rmdir " + quoted + " (the next keytool makes it again)"},
		{keydir.UnlockedError{Reason: keydir.LockNotRegular, Mode: fs.ModeSymlink | 0o777}, "to fix: rm " + quoted + " (the next keytool makes it again)"},
		{keydir.UnlockedError{Reason: keydir.LockNotRegular, Mode: fs.ModeNamedPipe | 0o600}, "to fix: rm " + quoted},
		{keydir.UnlockedError{Reason: keydir.LockOpenToOthers, Mode: 0o644}, "to fix: chmod 600 " + quoted},
		{keydir.UnlockedError{Reason: keydir.LockOtherOwner, Mode: 0o600, UID: 65534}, "to fix: rm " + quoted + " (the next keytool makes it again, the directory owner's)"},
		{keydir.UnlockedError{Reason: keydir.LockNotPermitted, Mode: 0o400, UID: os.Geteuid()}, "to fix: chmod 600 " + quoted},
		{keydir.UnlockedError{Reason: keydir.LockNotPermitted, Mode: 0o600, UID: os.Geteuid() + 1}, "run keytool as uid " + strconv.Itoa(os.Geteuid()+1) + ", the lock file's owner (or root)"},
		{keydir.UnlockedError{Reason: keydir.LockNoFlock, Err: syscall.ENOLCK}, "mount the file system with locks"},
		{keydir.UnlockedError{Reason: keydir.LockHeld}, "see which process holds it: fuser -v " + quoted},
		{keydir.UnlockedError{Reason: keydir.LockReplaced}, "something removes it while keytool takes it"},
		{keydir.UnlockedError{Reason: keydir.LockOpenFailed, Err: errors.New("boom")}, "to fix: rm " + quoted},
	} {
		c.u.Path = path
		if got := unlockedFix(&c.u); !strings.HasPrefix(got, c.want) {
			t.Errorf("reason %d: %q; want it to start %q", c.u.Reason, got, c.want)
		}
	}
}

// The admin index's lock file unusable is warned of without the race an
// edit's would risk: nothing is written unlocked, the index is unused.
func TestReportUnlockedIndex(t *testing.T) {
	var stderr strings.Builder
	c := &cli{stderr: &stderr}
	u := &keydir.UnlockedError{Path: "/h/.index/.keytool.lock", Reason: keydir.LockOpenToOthers, Mode: 0o644, Index: true}
	reportUnlocked(c, "authorize", unlockedList{u})
	got := stderr.String()
	want := "keytool authorize: warning: keydir: lock file /h/.index/.keytool.lock may be opened by group or others (mode 0644): the admin index /h/.index is not used, and each command reads every file instead (slow with many entries); to fix: chmod 600 /h/.index/.keytool.lock\n"
	if got != want {
		t.Errorf("warning %q\nwant %q", got, want)
	}
}

// unlockedList is an unlockedStore that met the lock files it holds.
type unlockedList []*keydir.UnlockedError

func (l unlockedList) Unlocked() []*keydir.UnlockedError { return l }
