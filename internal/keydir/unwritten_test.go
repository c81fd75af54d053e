package keydir

import (
	"errors"
	"testing"
)

// A query's outcome is the error of the first file it still could not
// rewrite: in the order it first failed on each, with the last try's
// error, and none once a later try rewrote every one.
func TestUnwrittenNamesTheFirstFileStillUnwritten(t *testing.T) {
	errA, errA2, errB := errors.New("a"), errors.New("a again"), errors.New("b")
	var u Unwritten
	u.Tried("ok.json", nil)
	if u.Err() != nil {
		t.Fatalf("after a file rewritten: %v, want nil", u.Err())
	}
	u.Tried("a.pub", errA)
	u.Tried("b.pub", errB)
	u.Tried("a.pub", errA2)
	if u.Err() != errA2 {
		t.Errorf("a.pub failed first, then again: %v, want its last error", u.Err())
	}
	u.Tried("a.pub", nil)
	if u.Err() != errB {
		t.Errorf("a.pub rewritten at last: %v, want b.pub's error", u.Err())
	}
	u.Tried("b.pub", nil)
	if u.Err() != nil {
		t.Errorf("every file rewritten: %v, want nil", u.Err())
	}
}

// Keep takes off the files that no longer hold what the query matches,
// whatever their errors, and keeps the order of the others.
func TestUnwrittenKeepsTheFilesThatStillHold(t *testing.T) {
	errA, errB, errC := errors.New("a"), errors.New("b"), errors.New("c")
	var u Unwritten
	u.Tried("a.pub", errA)
	u.Tried("b.pub", errB)
	u.Tried("c.pub", errC)
	u.Keep(func(f string) bool { return f != "a.pub" }, nil)
	if u.Err() != errB {
		t.Errorf("a.pub no longer holding: %v, want b.pub's error", u.Err())
	}
	u.Keep(func(string) bool { return false }, []Problem{{Path: "c.pub"}, {Path: "b.pub", Entry: true}})
	if u.Err() != errC {
		t.Errorf("no file holding, c.pub not loaded: %v, want c.pub's error (it may hold the copy)", u.Err())
	}
	u.Keep(func(string) bool { return false }, nil)
	if u.Err() != nil {
		t.Errorf("no file holding: %v, want nil", u.Err())
	}
}
