package etcd

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns the Source's metrics, for a Prometheus registry such
// as keytool proxy's (proxy.Metrics.Register), each labelled with the
// prefix:
//
//   - keytool_etcd_staleness_seconds: seconds since the view was last
//     known current (a list, or a progress confirmation); -1 before the
//     first. Past keytool_etcd_max_staleness_seconds every key is refused
//     (StaleError): alert well before, as docs/deploy.md says.
//   - keytool_etcd_max_staleness_seconds: Options.MaxStaleness (-1: no bound).
//   - keytool_etcd_revision: the etcd revision the view is consistent at.
//   - keytool_etcd_relists_total: lists after the first (each compaction
//     that cut the watch off costs one, and each history found not the
//     view's: a restore, another cluster).
//
// Each value is read from the Source at the scrape: nothing is counted on
// the watch's path.
func (s *Source) Collector() prometheus.Collector {
	return sourceCollector{s}
}

type sourceCollector struct{ s *Source }

var (
	descStaleness = prometheus.NewDesc("keytool_etcd_staleness_seconds",
		"Seconds since the etcd view was last known current (a list or a progress confirmation); -1 before the first.", []string{"prefix"}, nil)
	descMaxStaleness = prometheus.NewDesc("keytool_etcd_max_staleness_seconds",
		"The bound past which a stale etcd view refuses every key; -1: no bound.", []string{"prefix"}, nil)
	descRevision = prometheus.NewDesc("keytool_etcd_revision",
		"The etcd revision the view is consistent at (0: none yet).", []string{"prefix"}, nil)
	descRelists = prometheus.NewDesc("keytool_etcd_relists_total",
		"Lists of the prefix after the first (a compaction that cut the watch off, or etcd's history found not the view's, costs one).", []string{"prefix"}, nil)
)

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStaleness, descMaxStaleness, descRevision, descRelists} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	staleness := -1.0
	if t := s.Current(); !t.IsZero() {
		staleness = s.age(t).Seconds() // as the bound counts it
	}
	bound := -1.0
	if s.opts.MaxStaleness > 0 {
		bound = s.opts.MaxStaleness.Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descStaleness, prometheus.GaugeValue, staleness, s.prefix)
	ch <- prometheus.MustNewConstMetric(descMaxStaleness, prometheus.GaugeValue, bound, s.prefix)
	ch <- prometheus.MustNewConstMetric(descRevision, prometheus.GaugeValue, float64(s.Revision()), s.prefix)
	ch <- prometheus.MustNewConstMetric(descRelists, prometheus.CounterValue, float64(s.Relists()), s.prefix)
}
