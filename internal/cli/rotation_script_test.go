package cli

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/rogpeppe/go-internal/testscript"
)

// serverCert returns the certificate the TLS server at addr presents (the
// handshake itself may then fail: no client certificate is sent).
func serverCert(addr string) *x509.Certificate {
	var leaf *x509.Certificate
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				leaf = cs.PeerCertificates[0]
			}
			return nil
		},
	})
	if err == nil {
		c.Close()
	}
	return leaf
}

// presents HOST:PORT FILE waits (up to a minute) until the TLS server at
// HOST:PORT presents the key in FILE; announces HOST:PORT FILE, until its
// certificate announces that key as its next (gen --next). With !, until
// it no longer does.
func cmdPresents(ts *testscript.TestScript, neg bool, args []string) {
	waitForKey(ts, neg, args, "presents", func(leaf *x509.Certificate, k *jwk.Key) bool {
		pk, err := jwk.NewPublicKey(leaf.PublicKey)
		return err == nil && pk.Equal(k)
	})
}

func cmdAnnounces(ts *testscript.TestScript, neg bool, args []string) {
	waitForKey(ts, neg, args, "announces", func(leaf *x509.Certificate, k *jwk.Key) bool {
		next, err := tlsbridge.AnnouncedKeys(leaf)
		return err == nil && len(next) == 1 && next[0].Equal(k)
	})
}

func waitForKey(ts *testscript.TestScript, neg bool, args []string, name string, holds func(*x509.Certificate, *jwk.Key) bool) {
	if len(args) != 2 {
		ts.Fatalf("usage: %s HOST:PORT FILE", name)
	}
	keys, err := jwk.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	if len(keys) != 1 {
		ts.Fatalf("%s holds %d keys", args[1], len(keys))
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if leaf := serverCert(args[0]); leaf != nil && holds(leaf, keys[0]) != neg {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s %s %s: not so after a minute", name, args[0], args[1])
		}
	}
}

// names HOST:PORT NAME,… waits (up to a minute) until the certificate the
// TLS server at HOST:PORT presents names exactly those DNS names and IP
// addresses, in that order (gen --host --keep-key, picked up by a running
// proxy). With !, until it no longer does.
func cmdNames(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: names HOST:PORT NAME,…")
	}
	want := strings.Split(args[1], ",")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if leaf := serverCert(args[0]); leaf != nil {
			got := slices.Clone(leaf.DNSNames)
			for _, ip := range leaf.IPAddresses {
				got = append(got, ip.String())
			}
			if slices.Equal(got, want) != neg {
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("names %s %s: not so after a minute", args[0], args[1])
		}
	}
}
