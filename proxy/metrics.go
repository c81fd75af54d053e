package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handshake results, the "result" label of keytool_proxy_handshakes_total.
const (
	resultAdmitted = "admitted" // the key is let through to the target
	resultRefused  = "refused"  // the trust decision said no
	resultEnroll   = "enroll"   // an unknown key served enrollment only
	resultFailed   = "failed"   // the handshake did not get to a decision
)

// Handshake reasons, the "reason" label: the trust decision's verdict,
// or how the handshake failed. A closed set, so that the metric's series
// stay few whatever the peers do.
const (
	reasonKey              = "key"                 // admitted by an authorized (or pinned) key
	reasonCA               = "ca"                  // admitted by PKI mode
	reasonUnknown          = "unknown"             // not authorized (not pinned)
	reasonRevoked          = "revoked"             // listed as revoked, or its certificate in the CRL
	reasonRevocationFailed = "revocation_failed"   // a revocation input fails closed: everyone refused
	reasonExpired          = "expired"             // the entry's "expires" passed
	reasonFrom             = "from"                // outside the entry's "from" networks
	reasonChanged          = "changed"             // client mode: the target shows another key than pinned
	reasonSkipped          = "skipped_files"       // unknown while trust files are skipped
	reasonCARefused        = "ca_refused"          // PKI mode: the chain does not verify
	reasonTimeout          = "timeout"             // no handshake within the timeout
	reasonKeyRefused       = "peer_refused_key"    // the peer refused the proxy's key
	reasonTLS              = "tls_error"           // any other TLS failure: protocol, version, no certificate, reset
	reasonTooManyStartups  = "too_many_startups"   // closed as accepted: its source had MaxStartupsPerSource connections in their handshake
	reasonMaxStartups      = "max_startups"        // closed as accepted: MaxStartups refused it (all sources' connections in their handshake)
	reasonTooLarge         = "handshake_too_large" // the client sent more than the handshake budget before its handshake completed
)

// Metrics are a proxy's Prometheus metrics: handshakes by result and
// reason, open connections, bytes, and the trust stores' reloads and
// state. One Metrics serves one proxy (ServerOptions.Metrics,
// ClientOptions.Metrics) and the stores given to WatchStore; Handler
// serves them in the Prometheus text format. docs/deploy.md says what each
// metric means for alerting.
//
// The handshake path costs a few atomic additions: every label value is
// resolved once, here, not per connection.
type Metrics struct {
	reg         *prometheus.Registry
	handshakes  *prometheus.CounterVec
	hs          map[[2]string]prometheus.Counter
	open        prometheus.Gauge
	bytesIn     prometheus.Counter            // from the client
	bytesOut    prometheus.Counter            // to the client
	targetErrs  map[string]prometheus.Counter // target_errors by reason (targetErrorReasons)
	refusedReqs map[string]prometheus.Counter // HTTP mode: requests_refused by reason (requestRefusalReasons)
	reloads     *prometheus.CounterVec
	reloadTook  *prometheus.HistogramVec
}

// NewMetrics makes the metrics, with Go's runtime and process metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keytool_proxy_handshakes_total",
			Help: "TLS handshakes, by result (admitted, refused, enroll, failed) and reason (the trust decision's verdict, or how the handshake failed).",
		}, []string{"result", "reason"}),
		hs: map[[2]string]prometheus.Counter{},
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keytool_proxy_open_connections",
			Help: "Connections open through the proxy (admitted, until both sides are closed).",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keytool_trust_reloads_total",
			Help: "Reloads of a trust store that changed it (a file added, changed or removed).",
		}, []string{"store"}),
		reloadTook: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keytool_trust_reload_duration_seconds",
			Help:    "Time a reload of a trust store took, from the file change seen to the new snapshot in effect.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs to 26s
		}, []string{"store"}),
	}
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keytool_proxy_bytes_total",
		Help: "Bytes of admitted connections, by direction (in: from the client; out: to it), counted as each connection ends: those copied between client and target, or in HTTP mode those of the client's connection, TLS included.",
	}, []string{"direction"})
	m.bytesIn, m.bytesOut = bytes.WithLabelValues("in"), bytes.WithLabelValues("out")
	// By reason, as the handshakes: a target's failures after the
	// client's handshake, which keytool_proxy_handshakes_total does not
	// see (server mode admitted the client by then; client mode's
	// refused dial is no handshake). At zero from the start, as they are.
	targetErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keytool_proxy_target_errors_total",
		Help: "Failures of the target that no handshake counts, by reason: unreachable (the dial failed: refused, no route, no socket), " +
			"connect_timeout (server mode: the dial got no answer within the handshake timeout; HTTP mode answered 504), " +
			"bad_response (HTTP mode: the target closed or reset the connection before its response headers, or sent no valid ones; the client got 502), " +
			"response_timeout (HTTP mode: no response headers within the response header timeout; the client got 504), " +
			"truncated_response (HTTP mode: the target reset or closed the connection, or sent a malformed body, after its response headers; the client's response ended short).",
	}, []string{"reason"})
	m.targetErrs = map[string]prometheus.Counter{}
	for _, r := range targetErrorReasons {
		m.targetErrs[r] = targetErrors.WithLabelValues(r)
	}
	// HTTP mode's refusals of a request on an admitted connection, which
	// happen after its handshake and so count in no handshake: by the
	// trust decision's reason, as a refused handshake's, and connect.
	requestsRefused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keytool_proxy_requests_refused_total",
		Help: "HTTP mode: requests on an admitted connection that were refused, by reason: connect (a CONNECT, answered 405), " +
			"or why the key is no longer admitted (answered 403: revoked, expired, from, unknown, revocation_failed, skipped_files, ca_refused, tls_error).",
	}, []string{"reason"})
	m.refusedReqs = map[string]prometheus.Counter{}
	for _, r := range requestRefusalReasons {
		m.refusedReqs[r] = requestsRefused.WithLabelValues(r)
	}
	for _, r := range [][2]string{
		{resultAdmitted, reasonKey}, {resultAdmitted, reasonCA},
		{resultRefused, reasonUnknown}, {resultRefused, reasonRevoked}, {resultRefused, reasonRevocationFailed},
		{resultRefused, reasonExpired}, {resultRefused, reasonFrom}, {resultRefused, reasonChanged},
		{resultRefused, reasonSkipped}, {resultRefused, reasonCARefused},
		{resultEnroll, reasonUnknown},
		{resultFailed, reasonTimeout}, {resultFailed, reasonKeyRefused}, {resultFailed, reasonTLS},
		{resultFailed, reasonTooManyStartups}, {resultFailed, reasonMaxStartups}, {resultFailed, reasonTooLarge},
	} {
		// Every series exists from the start, at zero: rate() and
		// alerts see the first refusal as an increase.
		m.hs[r] = m.handshakes.WithLabelValues(r[0], r[1])
	}
	m.reg.MustRegister(m.handshakes, m.open, bytes, targetErrors, requestsRefused, m.reloads, m.reloadTook,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Register adds collectors of the program's own to the metrics.
func (m *Metrics) Register(c ...prometheus.Collector) error {
	for _, c := range c {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// handshake counts one handshake. A nil *Metrics counts nothing.
func (m *Metrics) handshake(result, reason string) {
	if m == nil {
		return
	}
	m.hs[[2]string{result, reason}].Inc()
}

// Reasons of keytool_proxy_target_errors_total: a closed set, whatever
// the target does.
const (
	reasonUnreachable     = "unreachable"      // the dial failed without timing out: refused, no route, no such socket
	reasonConnectTimeout  = "connect_timeout"  // server mode: the dial got no answer within HandshakeTimeout (*TargetTimeoutError)
	reasonBadResponse     = "bad_response"     // HTTP mode: the target closed or reset the connection, or sent no valid response headers
	reasonResponseTimeout = "response_timeout" // HTTP mode: no response headers within ResponseHeaderTimeout (*ResponseTimeoutError)
	// HTTP mode: the target broke off a response body it had begun (a
	// reset, closed before the body's end): the client's response ends
	// short (targetBody).
	reasonTruncatedResponse = "truncated_response"
)

var targetErrorReasons = []string{reasonUnreachable, reasonConnectTimeout, reasonBadResponse, reasonResponseTimeout, reasonTruncatedResponse}

// reasonConnect is the reason of keytool_proxy_requests_refused_total
// for a CONNECT (405); the others are a refused handshake's (403).
const reasonConnect = "connect"

var requestRefusalReasons = []string{
	reasonConnect, reasonUnknown, reasonRevoked, reasonRevocationFailed, reasonExpired, reasonFrom,
	reasonSkipped, reasonCARefused, reasonTLS,
}

// targetFailed counts a failure of the target under reason, one of
// targetErrorReasons.
func (m *Metrics) targetFailed(reason string) {
	if m != nil {
		m.targetErrs[reason].Inc()
	}
}

// requestRefused counts an HTTP request refused on an admitted
// connection: reasonConnect, or err's reason as refusalReason says it
// (one of requestRefusalReasons; any other, tls_error).
func (m *Metrics) requestRefused(reason string) {
	if m == nil {
		return
	}
	c, ok := m.refusedReqs[reason]
	if !ok {
		c = m.refusedReqs[reasonTLS]
	}
	c.Inc()
}

// opened counts a connection admitted; closed, its end and its bytes.
func (m *Metrics) opened() {
	if m != nil {
		m.open.Inc()
	}
}

func (m *Metrics) closed(in, out int64) {
	if m != nil {
		// Bytes first: a scrape that sees the connection gone sees its
		// bytes counted. A test that waited for open_connections 0 and
		// then read bytes_total once scraped between the two.
		m.bytesIn.Add(float64(in))
		m.bytesOut.Add(float64(out))
		m.open.Dec()
	}
}

// refusalReason is the reason label of a handshake or decision error:
// the trust decision's verdict when the error is one, else how the
// handshake failed.
func refusalReason(err error) (result, reason string) {
	var (
		akRevoked  *authkeys.RevokedError
		khRevoked  *knownhosts.RevokedError
		crlRevoked *tlsbridge.RevokedCertificateError
		notAuth    *authkeys.NotAuthorizedError
		ne         net.Error
		op         *net.OpError
	)
	switch {
	case errors.As(err, &akRevoked) && akRevoked.Err != nil, errors.As(err, &khRevoked) && khRevoked.Err != nil:
		return resultRefused, reasonRevocationFailed
	case errors.As(err, &akRevoked), errors.As(err, &khRevoked), errors.As(err, &crlRevoked):
		return resultRefused, reasonRevoked
	case errorIs[*authkeys.ExpiredError](err):
		return resultRefused, reasonExpired
	case errorIs[*authkeys.SourceNotAllowedError](err):
		return resultRefused, reasonFrom
	case errorIs[*knownhosts.KeyChangedError](err):
		return resultRefused, reasonChanged
	case errors.As(err, &notAuth) && notAuth.First != nil,
		errorIs[*tlsbridge.SkippedTrustError](err), errorIs[*authkeys.SkippedEntryError](err), errorIs[*knownhosts.SkippedFilesError](err):
		return resultRefused, reasonSkipped
	case errorIs[*tlsbridge.CARefusedError](err):
		return resultRefused, reasonCARefused
	case errorIs[*authkeys.NotAuthorizedError](err), errorIs[*knownhosts.UnknownHostError](err), errorIs[*tlsbridge.NotPinnedError](err):
		return resultRefused, reasonUnknown
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return resultFailed, reasonTimeout
	case errors.As(err, &op) && op.Op == "remote error" && keyAlerts[op.Err.Error()]:
		return resultFailed, reasonKeyRefused
	case errorIs[*HandshakeTooLargeError](err):
		return resultFailed, reasonTooLarge
	}
	return resultFailed, reasonTLS
}

// errorIs reports whether err has an error of type E in its chain.
func errorIs[E error](err error) bool {
	var e E
	return errors.As(err, &e)
}

// StoreStatus is a trust store whose state the metrics and the readiness
// check read: an *authkeys.Store or a *knownhosts.Store.
type StoreStatus interface {
	TrustStore
	Status() keydir.Status
}

// WatchStore adds the metrics of a trust store, labelled store=name: its
// reloads and their time (from now on), and, read at each scrape, its
// keys, revoked keys, skipped files, whether a revocation input fails
// closed, and the seconds since it last loaded with no file skipped.
// stop ends the reload counting (the state gauges stay). Each store's
// name must be unique.
func (m *Metrics) WatchStore(name string, s StoreStatus) (stop func()) {
	sc := &storeCollector{name: name, s: s}
	reloads, took := m.reloads.WithLabelValues(name), m.reloadTook.WithLabelValues(name)
	// Told of changes first, then the state read: a first load published
	// in between (authkeys.OpenEarly's, in the background) is seen by one
	// or the other.
	stop = s.OnChange(func(c authkeys.Change) {
		// A store still loading (authkeys.OpenEarly) publishes its first
		// load later: a load, not a reload.
		if c.Generation > 1 {
			reloads.Inc()
			took.Observe(c.Took.Seconds())
		}
		if c.Skipped == 0 {
			sc.mu.Lock()
			sc.lastOK = time.Now()
			sc.mu.Unlock()
		}
	})
	if st := s.Status(); st.Generation > 0 && st.Skipped == 0 {
		sc.mu.Lock()
		if sc.lastOK.IsZero() {
			sc.lastOK = time.Now()
		}
		sc.mu.Unlock()
	}
	m.reg.MustRegister(sc)
	return stop
}

// storeCollector reads a store's state at each scrape.
type storeCollector struct {
	name string
	s    StoreStatus

	mu     sync.Mutex
	lastOK time.Time // the last load with no file skipped; zero: none yet
}

var (
	descKeys = prometheus.NewDesc("keytool_trust_keys",
		"Keys loaded in a trust store (authorized or pinned; a key in two files counts twice).", []string{"store"}, nil)
	descRevoked = prometheus.NewDesc("keytool_trust_revoked_keys",
		"Keys listed in the revocation inputs a store reads.", []string{"store"}, nil)
	descSkipped = prometheus.NewDesc("keytool_trust_skipped_files",
		"Files, directories and entries a store skipped (unreadable, unsafe permissions, not parsed); their keys are not loaded.", []string{"store"}, nil)
	descRevFailed = prometheus.NewDesc("keytool_trust_revocation_failed",
		"1 while a revocation input cannot be read: the store refuses every key (fail closed).", []string{"store"}, nil)
	descSinceOK = prometheus.NewDesc("keytool_trust_seconds_since_last_successful_load",
		"Seconds since the store last loaded (at start or on a change) with no file skipped; grows while the files do not change; -1 if it never did.", []string{"store"}, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKeys, descRevoked, descSkipped, descRevFailed, descSinceOK} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	failed := 0.0
	if st.RevocationErr != nil {
		failed = 1
	}
	c.mu.Lock()
	since := -1.0
	if !c.lastOK.IsZero() {
		since = time.Since(c.lastOK).Seconds()
	}
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(st.Keys), c.name)
	ch <- prometheus.MustNewConstMetric(descRevoked, prometheus.GaugeValue, float64(st.Revoked), c.name)
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.GaugeValue, float64(st.Skipped), c.name)
	ch <- prometheus.MustNewConstMetric(descRevFailed, prometheus.GaugeValue, failed, c.name)
	ch <- prometheus.MustNewConstMetric(descSinceOK, prometheus.GaugeValue, since, c.name)
}
