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
