package proxy

import (
	"io"
	"net"
	"strings"
	"testing"
)

// BenchmarkBrowserGateSlowHead: what the client proxy's gate costs to
// read a 60 KiB request head that comes a byte at a time (a local client
// may send one so), against the same head in one write, and against the
// same reads with no gate (the floor: a read a byte). Each look at a
// head not yet whole looks only at what it had not seen: the ratio stays
// near the cost of a Read per byte, where looking again from the start
// made it grow with the square of the head (found by review,
// 2026-12-05). docs/benchmarks.md, "The client proxy's browser gate".
func BenchmarkBrowserGateSlowHead(b *testing.B) {
	heads := map[string]string{
		"request-line": "GET /" + strings.Repeat("a", 60<<10) + " HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"header-lines": "GET / HTTP/1.1\r\nHost: localhost\r\n" + strings.Repeat("X-A: b c\r\n", 6<<10) + "\r\n",
	}
	for _, name := range []string{"request-line", "header-lines"} {
		head := heads[name]
		for _, c := range []struct {
			label string
			chunk int
			gate  bool
		}{{"at-once", len(head), true}, {"byte-at-a-time", 1, true}, {"byte-at-a-time-no-gate", 1, false}} {
			chunk := c.chunk
			b.Run(name+"/"+c.label, func(b *testing.B) {
				b.SetBytes(int64(len(head)))
				buf := make([]byte, 64<<10)
				for b.Loop() {
					local, remote := net.Pipe()
					go func() {
						for i := 0; i < len(head); i += chunk {
							if _, err := remote.Write([]byte(head[i:min(i+chunk, len(head))])); err != nil {
								return
							}
						}
					}()
					var r io.Reader = local // the floor: the same reads, no gate
					if c.gate {
						r = &browserGate{Conn: local}
					}
					if n, err := io.ReadAtLeast(r, buf, len(head)); err != nil || n != len(head) {
						b.Fatalf("read %d of %d: %v", n, len(head), err)
					}
					local.Close()
					remote.Close()
				}
			})
		}
	}
}
