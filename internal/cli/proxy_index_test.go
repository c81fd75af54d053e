package cli

import (
	"io/fs"
	"syscall"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// The advice to give the proxy --index-dir goes only with the reasons
// that are about writing the index: its lock, its making, its writing —
// not a trust directory the proxy may not list, nor any other error that
// wraps a permission denied (found by review).
func TestIndexAdviceOnlyForTheIndex(t *testing.T) {
	denied := &fs.PathError{Op: "open", Path: "/etc/keytool/.index", Err: syscall.EACCES}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"the index's lock", &keydir.NotProvedError{Reason: "the admin index could not be locked", Err: denied}, true},
		{"the index not made", &keydir.NotProvedError{Reason: "no admin index, and this user may not make one", Err: &fs.PathError{Op: "write", Path: "/etc/keytool", Err: syscall.EROFS}}, true},
		{"the index not written", &keydir.IndexNotWrittenError{Dir: "/etc/keytool/authorized_keys.d", Index: "/etc/keytool/.index", Err: denied}, true},
		{"a directory not listed", &keydir.NotProvedError{Dir: "/etc/keytool/revoked_keys.d", Reason: "cannot list it", Err: denied}, false},
		{"no early decisions, for another reason", &keydir.NotProvedError{Reason: "a feed has no stamps"}, false},
		{"permission denied, not the index", denied, false},
	} {
		if got := indexNotWritable(c.err); got != c.want {
			t.Errorf("%s: advice %v, want %v", c.name, got, c.want)
		}
	}
}
