// Package sdnotify tells systemd about a service's state, as
// sd_notify(3) does: a datagram of "KEY=value" lines sent to the unix
// socket named by $NOTIFY_SOCKET (a path, or an abstract socket when it
// starts with "@"). A unit with Type=notify is "started" at READY=1, and
// "stopping" from STOPPING=1; WatchdogSec= expects WATCHDOG=1 at least
// every $WATCHDOG_USEC microseconds. Outside systemd the variable is
// unset and every call does nothing.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Messages of sd_notify(3).
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notify sends state (lines such as Ready, "STATUS=…") to systemd. It
// returns false, nil when $NOTIFY_SOCKET is unset.
func Notify(state ...string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // Linux's abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(state, "\n"))); err != nil {
		return false, err
	}
	return true, nil
}

// WatchdogInterval is how often systemd expects WATCHDOG=1 ($WATCHDOG_USEC,
// for this process: $WATCHDOG_PID unset or ours), zero when it expects
// none.
func WatchdogInterval() time.Duration {
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}
