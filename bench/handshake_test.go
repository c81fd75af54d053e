package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/bench/internal/fixturekeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// BenchmarkHandshake measures full mutual-TLS handshakes over loopback
// (TCP connect, TLS 1.3 handshake with client certificates, one byte,
// close), client and server in this process, sequentially (mode=seq) and
// from 2 parallel clients (mode=par2):
//
//	impl=stdlib-ca          Go's standard mutual TLS: CA-issued certificates of
//	                        the same key type, RequireAndVerifyClientCert
//	impl=keytool/keys=N     tlsbridge's pinned configs, N authorized keys
//	impl=libtrust-distinct-leaf/keys=N
//	                        libtrust's NewIdentityAuthTLSConfig server and client,
//	                        except for a client leaf whose subject differs from its
//	                        per-key CA certificate's: as shipped, libtrust cannot
//	                        complete a handshake on Go ≥ 1.19 (BenchmarkLibtrustHandshake)
//
// The whole set is run BENCH_ROUNDS times (default 4), interleaved, so
// that the machine's drift hits every case alike; repeated names get
// Go's "#01" suffixes, which the report strips.
//
//	go test -run '^$' -bench 'Handshake$' -benchtime 500ms -timeout 30m
func BenchmarkHandshake(b *testing.B) {
	rounds := envInt("BENCH_ROUNDS", 4)
	big := envInt("BENCH_BIG", 1_000_000)
	sweep := []int{1_000, 10_000, 100_000}
	type cas struct {
		name string
		srv  *tls.Config
		cli  func(string) *tls.Config
	}
	var cases []cas
	for _, t := range types {
		s, c := stdlibPair(b, t)
		cases = append(cases, cas{fmt.Sprintf("type=%s/impl=stdlib-ca", t), s, c})
		one, _ := keytoolStore(b, 1, t)
		s, c = keytoolPair(b, t, one)
		cases = append(cases, cas{fmt.Sprintf("type=%s/impl=keytool/keys=1", t), s, c})
		if t == jwk.EC256 {
			for _, n := range sweep {
				if n >= big {
					continue
				}
				st, took := keytoolStore(b, n, t)
				b.Logf("loaded %d keys in %v", n, took)
				s, c = keytoolPair(b, t, st)
				cases = append(cases, cas{fmt.Sprintf("type=%s/impl=keytool/keys=%d", t, n), s, c})
			}
		}
		if t != jwk.Ed25519 {
			// libtrust's server and client, with the one change that
			// lets Go ≥ 1.19 build its chain (see BenchmarkLibtrustHandshake).
			for _, n := range []int{1, 880} {
				if n > 1 && t != jwk.EC256 {
					continue
				}
				s, _, _ := libtrustPair(b, t, n-1)
				cases = append(cases, cas{fmt.Sprintf("type=%s/impl=libtrust-distinct-leaf/keys=%d", t, n), s, distinctLeafClient(b, t)})
			}
		}
		st, took := keytoolStore(b, big, t)
		if took > 0 {
			b.Logf("loaded %d keys in %v", big, took)
		}
		s, c = keytoolPair(b, t, st)
		cases = append(cases, cas{fmt.Sprintf("type=%s/impl=keytool/keys=%d", t, big), s, c})
	}
	type running struct {
		name string
		srv  *server
		cfg  *tls.Config
	}
	var rs []running
	for _, c := range cases {
		s := serve(b, c.srv)
		defer s.close()
		cfg := c.cli(s.addr())
		if _, err := handshake(s.addr(), cfg); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		rs = append(rs, running{c.name, s, cfg})
	}
	for round := range rounds {
		// Each round in its own order: run in a fixed order, a case would
		// always follow the same neighbour and meet the machine in the same
		// state (a GC owed, a cache warm), and that showed as a steady drift
		// along the order, larger than the differences measured.
		order := rand.New(rand.NewPCG(uint64(round), 0x6b6579746f6f6c)).Perm(len(rs))
		for _, i := range order {
			r := rs[i]
			for _, par := range []bool{false, true} {
				mode := "seq"
				if par {
					mode = "par2"
				}
				b.Run(r.name+"/mode="+mode, gcFirst(func(b *testing.B) { runHandshakes(b, r.srv.addr(), r.cfg, par) }))
			}
		}
	}
}

// BenchmarkResume compares TLS 1.3 resumed handshakes (session tickets)
// with full ones, for keytool — whose VerifyConnection, and so the
// revocation check, runs on resumption too; the server's store has
// BENCH_REVOKED (default 1,000) revoked keys — and for the standard
// library. After the timings it revokes the client's key and checks that
// the next resumed handshake is refused.
//
//	go test -run '^$' -bench Resume -benchtime 500ms
func BenchmarkResume(b *testing.B) {
	rounds := envInt("BENCH_ROUNDS", 4)
	t := jwk.EC256
	home := filepath.Join(b.TempDir(), "home")
	ad := filepath.Join(home, "authorized_keys.d")
	rd := filepath.Join(home, "revoked_keys.d")
	os.MkdirAll(ad, 0o755)
	os.MkdirAll(rd, 0o755)
	if err := jwk.WritePublicKeyFile(filepath.Join(ad, "client.json"), clientKey(b, t), jwk.JWK, jwk.CreateNew); err != nil {
		b.Fatal(err)
	}
	nrev := envInt("BENCH_REVOKED", 1_000)
	var revoked []string
	for i := range nrev {
		revoked = append(revoked, edJWK(i))
	}
	if err := os.WriteFile(filepath.Join(rd, "revoked.json"), jwkSet(revoked), 0o644); err != nil {
		b.Fatal(err)
	}
	store := authkeys.Load(authkeys.HomeOptions(home))
	if len(store.Revoked()) != nrev {
		b.Fatalf("%d revoked keys, want %d (%v)", len(store.Revoked()), nrev, store.Problems())
	}
	ks, kc := keytoolPair(b, t, store)
	ss, sc := stdlibPair(b, t)
	type cas struct {
		name string
		srv  *server
		cfg  *tls.Config
	}
	var cases []cas
	for _, c := range []struct {
		name string
		srv  *tls.Config
		cli  func(string) *tls.Config
	}{{"impl=keytool", ks, kc}, {"impl=stdlib-ca", ss, sc}} {
		s := serve(b, c.srv)
		defer s.close()
		full := c.cli(s.addr())
		res := full.Clone()
		res.ClientSessionCache = tls.NewLRUClientSessionCache(16)
		if _, err := handshake(s.addr(), res); err != nil {
			b.Fatal(err)
		}
		if resumed, err := handshake(s.addr(), res); err != nil || !resumed {
			b.Fatalf("%s: second handshake resumed=%v err=%v", c.name, resumed, err)
		}
		cases = append(cases, cas{c.name + "/hs=full", s, full}, cas{c.name + "/hs=resumed", s, res})
	}
	for range rounds {
		for _, c := range cases {
			b.Run(fmt.Sprintf("type=%s/%s", t, c.name), gcFirst(func(b *testing.B) {
				defer cpuPerOp(b)()
				for b.Loop() {
					resumed, err := handshake(c.srv.addr(), c.cfg)
					if err != nil {
						b.Fatal(err)
					}
					if resumed != strings.HasSuffix(c.name, "resumed") {
						b.Fatalf("resumed=%v", resumed)
					}
				}
			}))
		}
	}
	// Revocation applies to resumed sessions: revoke the client's key and
	// resume a session ticket issued before.
	res := cases[1]
	if _, err := handshake(res.srv.addr(), res.cfg); err != nil {
		b.Fatal(err)
	}
	if _, err := store.Revoke(clientKey(b, t).PublicKey()); err != nil {
		b.Fatal(err)
	}
	resumed, err := handshake(res.srv.addr(), res.cfg)
	refused := 0.0
	if err != nil {
		refused = 1
		b.Logf("resumption after revocation refused: %v", err)
	} else {
		b.Errorf("resumption after revocation succeeded (resumed=%v)", resumed)
	}
	b.Run("revoked-resume", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(refused, "refused")
		b.ReportMetric(float64(nrev), "revoked-keys")
	})
}

// gcFirst runs a garbage collection before the first call of f (the
// framework calls it several times to size b.N). The process holds up to
// a million keys (hundreds of MB), so a GC cycle costs a few hundred ms of
// CPU; without this, whichever case a cycle happens to fall in — often
// the same one in every round, since the rounds allocate alike — pays for
// it. In steady state GC's cost per allocated byte does not depend on the
// heap's size (a bigger heap is collected less often), so this removes
// noise, not a cost of the number of keys.
func gcFirst(f func(b *testing.B)) func(b *testing.B) {
	done := false
	return func(b *testing.B) {
		if !done {
			runtime.GC()
			done = true
		}
		f(b)
	}
}

// BenchmarkVerify measures the part of a handshake in which keytool and
// the standard library differ, server side, without the network and the
// cryptography they share:
//
//	impl=keytool/keys=N  GetConfigForClient (one tls.Config clone per
//	                     connection) + VerifyConnection (SPKI hash, revocation,
//	                     lookup); at N > 1 it cycles through 4,096 different
//	                     authorized keys, so that at a million most lookups miss
//	                     the CPU caches
//	impl=stdlib-ca       what crypto/tls does for RequireAndVerifyClientCert:
//	                     x509.Certificate.Verify of the client's CA-issued leaf
//	                     against ClientCAs, for client authentication
//
// The client side is the mirror image (keytool: a known_hosts lookup;
// stdlib: a chain verification with a host name).
//
//	go test -run '^$' -bench Verify
func BenchmarkVerify(b *testing.B) {
	big := envInt("BENCH_BIG", 1_000_000)
	for _, t := range types {
		srv, _ := stdlibPair(b, t)
		leaf, err := x509.ParseCertificate(srv.Certificates[0].Certificate[0])
		if err != nil {
			b.Fatal(err)
		}
		// The server's own leaf is CA-issued like the client's (with
		// server usage); verify it as crypto/tls verifies a client's.
		opts := x509.VerifyOptions{Roots: srv.ClientCAs, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("type=%s/impl=stdlib-ca", t), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				// (crypto/tls parses the peer's certificates for keytool
				// too: parsing is not part of the difference.)
				if _, err := leaf.Verify(opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		sizes := []int{1}
		if t == jwk.EC256 {
			sizes = append(sizes, big)
		}
		for _, n := range sizes {
			store, _ := keytoolStore(b, n, t)
			ksrv, _ := keytoolPair(b, t, store)
			var states []tls.ConnectionState
			if n == 1 {
				id, err := tlsbridge.NewIdentity(clientKey(b, t), tlsbridge.CertOptions{})
				if err != nil {
					b.Fatal(err)
				}
				leaf, err := x509.ParseCertificate(id.Certificate.Certificate[0])
				if err != nil {
					b.Fatal(err)
				}
				states = append(states, tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}})
			} else {
				step := max(1, n/4096)
				for i := 0; i < n && len(states) < 4096; i += step {
					ks, err := jwk.Parse([]byte(fixturekeys.JWKs(n)[i]))
					if err != nil {
						b.Fatal(err)
					}
					// VerifyConnection reads the leaf's SPKI and the key
					// x509 parsed from it (the SPKI must be its one form).
					states = append(states, tls.ConnectionState{PeerCertificates: []*x509.Certificate{{RawSubjectPublicKeyInfo: ks[0].SPKI(), PublicKey: ks[0].Public()}}})
				}
			}
			cli, srvSide := net.Pipe()
			defer cli.Close()
			defer srvSide.Close()
			hello := &tls.ClientHelloInfo{Conn: srvSide}
			cc, err := ksrv.GetConfigForClient(hello)
			if err != nil {
				b.Fatal(err)
			}
			for _, s := range states {
				if err := cc.VerifyConnection(s); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(fmt.Sprintf("type=%s/impl=keytool/keys=%d", t, n), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					cc, err := ksrv.GetConfigForClient(hello)
					if err != nil {
						b.Fatal(err)
					}
					if err := cc.VerifyConnection(states[i%len(states)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
