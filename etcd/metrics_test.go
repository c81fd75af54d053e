package etcd

import (
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/proxy"
)

// scrape returns the exposition of m and the value of one series of it.
func scrape(t *testing.T, m *proxy.Metrics, series string) (string, float64) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	match := re.FindStringSubmatch(text)
	if match == nil {
		t.Fatalf("no %s in the exposition:\n%s", series, text)
	}
	v, err := strconv.ParseFloat(match[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return text, v
}

// TestStalenessMetric: a proxy's metrics (proxy.Metrics.Register) carry
// the Source's staleness — under a second while etcd confirms the view,
// growing past the bound once etcd is gone, when the store refuses every
// key — in an exposition promtool accepts.
func TestStalenessMetric(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	alice := keydirtest.Key(t, 1)
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, MaxStaleness: 2 * time.Second, Progress: 200 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	m := proxy.NewMetrics()
	if err := m.Register(src.Collector()); err != nil {
		t.Fatal(err)
	}
	const series = `keytool_etcd_staleness_seconds{prefix="` + prefix + `"}`
	time.Sleep(time.Second) // several confirmations
	text, fresh := scrape(t, m, series)
	if fresh < 0 || fresh > 1 {
		t.Fatalf("staleness %v s while etcd confirms the view every 200 ms", fresh)
	}
	for _, want := range []string{
		`keytool_etcd_max_staleness_seconds{prefix="` + prefix + `"} 2`,
		`keytool_etcd_relists_total{prefix="` + prefix + `"} 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("the exposition lacks %q", want)
		}
	}
	if _, rev := scrape(t, m, `keytool_etcd_revision{prefix="`+prefix+`"}`); rev < 2 {
		t.Errorf("revision %v, want the put's", rev)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (.ci/run installs Debian's prometheus): %v", err)
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}

	ms[0].stop()
	eventually(t, 10*time.Second, "the store does not refuse once stale", func() bool {
		return verdict(store, alice) == authkeys.Revoked
	})
	if _, stale := scrape(t, m, series); stale < 2 {
		t.Fatalf("staleness %v s while the store refuses as stale past the 2 s bound", stale)
	}
}
