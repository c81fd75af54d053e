package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestNotify: without NOTIFY_SOCKET nothing is sent; with a path, and
// with an abstract name ("@…"), the datagram arrives as one message.
func TestNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: sent %v, %v", sent, err)
	}
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	abstract := "@keytool-sdnotify-test-" + strconv.Itoa(os.Getpid())
	for _, env := range []string{filepath.Join(dir, "notify"), abstract} {
		name := env
		if env[0] == '@' {
			name = "\x00" + env[1:]
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", env)
		if sent, err := Notify(Stopping, "STATUS=draining"); !sent || err != nil {
			t.Fatalf("%s: sent %v, %v", env, sent, err)
		}
		buf := make([]byte, 256)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		conn.Close()
		if err != nil || string(buf[:n]) != "STOPPING=1\nSTATUS=draining" {
			t.Fatalf("%s: received %q, %v", env, buf[:n], err)
		}
	}
}

// TestWatchdogInterval: WATCHDOG_USEC for this process, none for another
// PID or a value that is not a positive number.
func TestWatchdogInterval(t *testing.T) {
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"2000000", "", 2 * time.Second},
		{"2000000", strconv.Itoa(os.Getpid()), 2 * time.Second},
		{"2000000", "1", 0},
		{"-5", "", 0},
		{"x", "", 0},
	} {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		if got := WatchdogInterval(); got != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", c.usec, c.pid, got, c.want)
		}
	}
}
