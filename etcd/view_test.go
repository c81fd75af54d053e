package etcd

import (
	"fmt"
	"log/slog"
	"testing"
)

// BenchmarkMakeViewOutsideLayout: a list whose prefix holds n keys
// outside the layout (data of something else under keytool's prefix)
// makes its view in time linear in n.
func BenchmarkMakeViewOutsideLayout(b *testing.B) {
	for _, n := range []int{1000, 10000, 40000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			kv := make(map[string][]byte, n)
			for i := range n {
				kv[fmt.Sprintf("other/%06d", i)] = []byte("x")
			}
			s := &Source{prefix: prefix, log: slog.New(slog.DiscardHandler), opts: Options{MaxValue: DefaultMaxValue}}
			for b.Loop() {
				if v := s.makeView(1, kv); len(v.outside) != n {
					b.Fatalf("%d keys outside the layout, want %d", len(v.outside), n)
				}
			}
		})
	}
}

// TestOutsideLayoutFollowsEvents: a key outside the layout is reported
// once however often it is written, and no longer once removed — what a
// list's view holds and each event changes.
func TestOutsideLayoutFollowsEvents(t *testing.T) {
	s := &Source{prefix: prefix, log: slog.New(slog.DiscardHandler), opts: Options{MaxValue: DefaultMaxValue}}
	v := s.makeView(1, map[string][]byte{"x": []byte("1"), "y": nil, "authorized_keys/a": []byte("{}")})
	paths := func() (out []string) {
		for _, p := range v.outside {
			out = append(out, p.Path)
		}
		return out
	}
	if got := fmt.Sprint(paths()); got != "["+prefix+"/x "+prefix+"/y]" {
		t.Fatalf("listed: %s", got)
	}
	s.place(v, "y", []byte("2"), false)
	s.place(v, "y", []byte("3"), false)
	s.place(v, "x", nil, true)
	s.place(v, "z", nil, false)
	if got := fmt.Sprint(paths()); got != "["+prefix+"/y "+prefix+"/z]" {
		t.Fatalf("after y rewritten twice, x removed, z made: %s", got)
	}
	if len(v.other) != 2 || string(v.other["y"]) != "3" {
		t.Fatalf("other: %q", v.other)
	}
}
