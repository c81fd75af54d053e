package etcd

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestStaleSaysWhy: when the view turns stale because etcd refuses or
// fails the reads that confirm it (logged at debug level each time, one
// a Progress), the error that says so names the last failure — before,
// it named none (found by review: a host whose role could not read the
// key the check read went stale for no reason its log gave).
func TestStaleSaysWhy(t *testing.T) {
	ms := startCluster(t, 1)
	var log bytes.Buffer
	c := client(t, ms[0].endpoint())
	src := open(t, Options{Client: c, Prefix: prefix, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	c.Close() // every read fails from now on
	if r := src.check(t.Context(), src.opts.Client); r.current {
		t.Fatal("a closed client confirmed the view")
	}
	ago := time.Now().Add(-time.Hour)
	src.current.Store(&ago)
	src.checkStale()
	line := ""
	for l := range strings.Lines(log.String()) {
		if strings.Contains(l, "etcd view stale") {
			line = l
		}
	}
	if !strings.Contains(line, "client connection is closing") {
		t.Fatalf("the stale error does not say why the view could not be confirmed:\n%s", log.String())
	}
}
