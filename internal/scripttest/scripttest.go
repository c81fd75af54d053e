// Package scripttest holds the testscript commands that the command line's
// script tests share: internal/cli's and the etcd build's
// (etcd/cmd/keytool). Only tests import it.
package scripttest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/keytool/keytool/internal/freeport"
)

// Mode is "mode PERM FILE…": it asserts the permission bits of each FILE
// (a glob pattern, which must match), e.g. "mode 0600 key.json"; with !,
// that they differ.
func Mode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: mode PERM FILE...")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("mode: %v", err)
	}
	for _, pattern := range args[1:] {
		files, _ := filepath.Glob(ts.MkAbs(pattern))
		if len(files) == 0 {
			ts.Fatalf("mode: no file matches %s", pattern)
		}
		for _, f := range files {
			fi, err := os.Stat(f)
			ts.Check(err)
			got := uint64(fi.Mode().Perm())
			if (got == want) == neg {
				ts.Fatalf("%s has mode %04o, want %s%04o", pattern, got, map[bool]string{true: "not ", false: ""}[neg], want)
			}
		}
	}
}

// FreePort is "freeport VAR": it sets VAR to a loopback port nothing
// listens on now, outside the range other listeners get theirs from
// (internal/freeport).
func FreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	port, err := freeport.Find()
	ts.Check(err)
	ts.Setenv(args[0], strconv.Itoa(port))
}

// Listening is "listening HOST:PORT" or "listening unix:PATH": it waits
// (up to a minute, on a loaded machine) until something accepts
// connections there.
func Listening(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: listening HOST:PORT | unix:PATH")
	}
	network, addr := "tcp", args[0]
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("nothing listens on %s: %v", args[0], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
