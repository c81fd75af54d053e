package procstatus

import (
	"os"
	"testing"
)

// TestBytes: the resident set of a running process is read, in bytes,
// and an absent field is 0.
func TestBytes(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status on this system")
	}
	if rss := Bytes("VmRSS"); rss < 1<<20 {
		t.Errorf("VmRSS %d bytes, want at least 1 MiB", rss)
	}
	if n := Bytes("NoSuchField"); n != 0 {
		t.Errorf("an absent field gave %d", n)
	}
}

// TestOf: another process's resident set is read by its pid (here this
// one's, as the child would see it), and a process that is gone gives 0.
func TestOf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status on this system")
	}
	if rss := Of(os.Getpid(), "VmHWM"); rss < 1<<20 {
		t.Errorf("VmHWM of pid %d: %d bytes, want at least 1 MiB", os.Getpid(), rss)
	}
	if n := Of(-1, "VmRSS"); n != 0 {
		t.Errorf("no such process gave %d", n)
	}
}
