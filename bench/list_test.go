package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkList runs `keytool authorize --list` (the table), `keytool
// authorize --list --json` and `keytool list --json` (the overview, one
// object) as real processes in the admin benchmark's
// home of BENCH_LIST_KEYS (100,000) authorized keys, one file each, and,
// as their baseline in the same rounds, `keytool bundle authorized`,
// which loads the same store and streams every key: a list that
// held its rows would show as a peak RSS above the bundle's. Each writes
// to a file, not to this process. BENCH_LIST_ROUNDS rounds (default 3)
// alternate the four; the metrics are medians of wall and CPU time (user
// and system), the peak RSS of each command (the child's ru_maxrss), and
// the ratios to the bundle's.
//
//	go test -run '^$' -bench '^BenchmarkList$' -benchtime 1x -timeout 30m
func BenchmarkList(b *testing.B) {
	rounds := envInt("BENCH_LIST_ROUNDS", 3)
	n := envInt("BENCH_LIST_KEYS", 100_000)
	bin := buildKeytool(b)
	home := adminHome(b, bin, n)
	out := filepath.Join(scratch, "list.out")
	cmds := []struct {
		name string
		args []string
	}{
		{"table", []string{"authorize", "--list"}},
		{"json", []string{"authorize", "--list", "--json"}},
		{"overview", []string{"list", "--json"}},
		{"bundle", []string{"bundle", "authorized"}},
	}
	wall := map[string][]time.Duration{}
	cpu := map[string][]time.Duration{}
	rss := map[string]int64{}
	for range rounds {
		for _, c := range cmds {
			f, err := os.Create(out)
			if err != nil {
				b.Fatal(err)
			}
			cmd := exec.Command(bin, append([]string{"-H", home}, c.args...)...)
			cmd.Stdout = f
			w, u, r := runMeasured(b, cmd)
			f.Close()
			wall[c.name], cpu[c.name], rss[c.name] = append(wall[c.name], w), append(cpu[c.name], u), max(rss[c.name], r)
		}
	}
	b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
		for _, c := range cmds {
			b.ReportMetric(ms(median(wall[c.name])), "ms-"+c.name)
			b.ReportMetric(ms(median(cpu[c.name])), "ms-cpu-"+c.name)
			b.ReportMetric(float64(rss[c.name])/1024, "MiB-rss-"+c.name)
		}
		for _, c := range cmds[:len(cmds)-1] {
			b.ReportMetric(float64(median(cpu[c.name]))/float64(median(cpu["bundle"])), "cpu-ratio-"+c.name)
			b.ReportMetric(float64(rss[c.name])/float64(rss["bundle"]), "rss-ratio-"+c.name)
		}
	})
}
