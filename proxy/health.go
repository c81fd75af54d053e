package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Health answers whether a proxy is alive and whether it is ready to
// admit clients, for a load balancer, Kubernetes probes or an operator:
// ready means the trust stores have loaded, the identity's certificate is
// valid now, the proxy is listening (and not draining), and no revocation
// input fails closed (a store refusing every key is not ready to admit
// anyone). docs/deploy.md shows the probes.
type Health struct {
	stores   []namedStore
	identity atomic.Pointer[func() error]
	serving  atomic.Bool
}

type namedStore struct {
	name string
	s    StoreStatus
}

// NewHealth makes the checks of a proxy; AddStore and SetIdentity add to
// them before it serves.
func NewHealth() *Health { return &Health{} }

// AddStore adds a trust store to the readiness check, named for the
// reasons it gives.
func (h *Health) AddStore(name string, s StoreStatus) {
	h.stores = append(h.stores, namedStore{name, s})
}

// SetIdentity sets the check that the identity is usable now
// (CertificateValid). It may be called while serving, when the identity
// is reloaded.
func (h *Health) SetIdentity(check func() error) { h.identity.Store(&check) }

// SetServing says whether the proxy is accepting connections: true once it
// listens, false from the start of its drain.
func (h *Health) SetServing(on bool) { h.serving.Store(on) }

// Ready returns nil when the proxy is ready to admit clients, else why
// not. The reasons name stores and conditions, never files.
func (h *Health) Ready() error {
	var errs []error
	if !h.serving.Load() {
		errs = append(errs, errors.New("not accepting connections"))
	}
	for _, s := range h.stores {
		st := s.s.Status()
		if st.Generation == 0 {
			errs = append(errs, fmt.Errorf("trust store %s: not loaded yet", s.name))
		}
		if st.RevocationErr != nil {
			errs = append(errs, fmt.Errorf("trust store %s: a revocation input cannot be read: every key is refused", s.name))
		}
	}
	if check := h.identity.Load(); check != nil && *check != nil {
		if err := (*check)(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CertificateValid returns the identity check of a certificate: an error
// when its leaf is not valid now (a CA-issued certificate that expired;
// keytool's self-signed ones never do).
func CertificateValid(cert *tls.Certificate) func() error {
	return func() error {
		leaf := cert.Leaf
		if leaf == nil {
			if len(cert.Certificate) == 0 {
				return errors.New("identity: no certificate")
			}
			var err error
			if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return fmt.Errorf("identity: %v", err)
			}
		}
		now := time.Now()
		switch {
		case now.Before(leaf.NotBefore):
			return fmt.Errorf("identity: certificate not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
		case now.After(leaf.NotAfter):
			return fmt.Errorf("identity: certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		return nil
	}
}

// OpsHandler serves /healthz (200 while the process answers), /readyz
// (200 when h.Ready, else 503 with the reasons) and, if m is set,
// /metrics. It is meant for a listener of its own, apart from the
// proxied traffic (keytool proxy --metrics-listen).
func OpsHandler(h *Health, m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := h.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready:\n"+err.Error()+"\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	return mux
}
