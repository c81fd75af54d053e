package keydir

import (
	"fmt"
	"io/fs"
	"os"
)

// PermissionError means a trust file or directory could be changed by
// someone other than its owner or root, so its contents cannot be trusted
// (OpenSSH's StrictModes). Path names the file or directory at fault; the
// message gives the command that fixes it.
type PermissionError struct {
	Path  string
	Mode  fs.FileMode
	Owner int // -1 unless the fault is the owner
}

func (e *PermissionError) Error() string {
	what := "file"
	if e.Mode.IsDir() {
		what = "directory"
	}
	if e.Owner >= 0 {
		return fmt.Sprintf("%s %s is owned by uid %d, neither root nor this process's user (uid %d), who could change the keys it holds; fix with: chown %d %s (or disable strict modes)",
			what, e.Path, e.Owner, os.Geteuid(), os.Geteuid(), shellQuote(e.Path))
	}
	return fmt.Sprintf("permissions %04o for %s %s are too open: group or others could write to it and so add keys; fix with: chmod go-w %s (or disable strict modes)",
		e.Mode.Perm(), what, e.Path, shellQuote(e.Path))
}

// checkMode refuses a file or directory that is writable by group or
// others, or owned by a user other than root or the effective user.
func checkMode(path string, k statKey) error {
	if k.mode.Perm()&0o022 != 0 {
		return &PermissionError{Path: path, Mode: k.mode, Owner: -1}
	}
	if k.uid != ^uint32(0) && k.uid != 0 && int(k.uid) != os.Geteuid() {
		return &PermissionError{Path: path, Mode: k.mode, Owner: int(k.uid)}
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it holds anything but the
// characters that never need quoting, so that a message's command can be
// pasted as is.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '_' || r == '-' || r == '+' || r == ':' || r == '@' || r == '%' || r == ',' || r == '=') {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, `'\''`...)
		} else {
			out = append(out, s[i])
		}
	}
	return string(append(out, '\''))
}

// ShellQuote is shellQuote for the stores' messages.
func ShellQuote(s string) string { return shellQuote(s) }
