package etcd_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/etcd"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// An HTTP server whose clients are authorized from etcd, and a client
// that pins the server's key from etcd: what every host of a fleet runs.
// One Put under PREFIX/authorized_keys admits a client on every server
// watching the prefix; one Put under PREFIX/revoked_keys refuses it
// everywhere.
func Example() {
	ctx := context.Background()
	endpoint, stop := exampleEtcd() // your cluster, in production
	defer stop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	const prefix = "/keytool/example"
	cache, _ := os.MkdirTemp("", "keytool-example")
	defer os.RemoveAll(cache)

	// Every host: one Source of the prefix (with a cache for restarts
	// while etcd is away), read by the stores.
	src, err := etcd.Open(ctx, etcd.Options{Client: cli, Prefix: prefix, Cache: filepath.Join(cache, "etcd.json")})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	<-src.Ready()
	clients := authkeys.Open(ctx, src.AuthorizedOptions())
	defer clients.Close()
	hosts := knownhosts.Open(ctx, src.KnownHostsOptions())
	defer hosts.Close()

	// A server admitting the clients authorized in etcd.
	serverID := newIdentity()
	srv, err := tlsbridge.NewServer(serverID, tlsbridge.ServerOptions{Clients: clients})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.RequireAuthenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", tlsbridge.PeerFromContext(r.Context()).Name())
	})))
	ts.TLS = srv.TLSConfig()
	ts.Config.ConnContext = tlsbridge.ConnContext
	ts.StartTLS()
	defer ts.Close()

	// The administrator writes the server's key (for its clients to pin)
	// and a client's key (for the servers to admit): the same bytes as
	// the files of a keytool home.
	clientID := newIdentity()
	put := func(kind etcd.Kind, name string, k *jwk.Key, attr, value string) {
		pub := k.PublicKey()
		pub.Attrs = jwk.Attributes{}
		pub.Attrs.SetString(attr, value)
		b, err := pub.MarshalPublic(jwk.JWK)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := cli.Put(ctx, etcd.Key(prefix, kind, name), string(b)); err != nil {
			log.Fatal(err)
		}
	}
	put(etcd.TrustedHosts, "web1", serverID.Key, jwk.AttrAddress, ts.Listener.Addr().String())
	put(etcd.Authorized, "alice", clientID.Key, jwk.AttrName, "alice")
	// The watch delivers both in milliseconds.
	for clients.Decide(clientID.Key.SPKIHash(), netip.Addr{}).Verdict != authkeys.Authorized || len(hosts.Entries()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}

	c, err := tlsbridge.NewClient(clientID, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := (&http.Client{Transport: c.Transport()}).Get(ts.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: hello, alice
}

func newIdentity() *tlsbridge.Identity {
	k, err := jwk.Generate(jwk.Ed25519)
	if err != nil {
		log.Fatal(err)
	}
	id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{DNSNames: []string{"localhost"}})
	if err != nil {
		log.Fatal(err)
	}
	return id
}

// exampleEtcd starts a one-member etcd on loopback ports, its data in a
// temporary directory.
func exampleEtcd() (endpoint string, stop func()) {
	dir, err := os.MkdirTemp("", "keytool-example-etcd")
	if err != nil {
		log.Fatal(err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "data")
	cfg.LogLevel, cfg.LogOutputs = "error", []string{filepath.Join(dir, "etcd.log")}
	port := func() url.URL {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		defer l.Close()
		return url.URL{Scheme: "http", Host: l.Addr().String()}
	}
	c, p := port(), port()
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{c}, []url.URL{c}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{p}, []url.URL{p}
	cfg.InitialCluster = cfg.Name + "=" + p.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatal(err)
	}
	<-e.Server.ReadyNotify()
	return c.String(), func() { e.Close(); os.RemoveAll(dir) }
}

// A host that logs in to etcd as a user (etcd's RBAC: a role that may
// only read the prefix) keeps its login: without KeepLogin, clientv3
// logs in again — a bcrypt check of the password on the member — for
// every watch the Source makes anew after one ended.
func ExampleKeepLogin() {
	const prefix = "/keytool/prod"
	password, err := os.ReadFile("/etc/keytool/etcd-password") // mode 0600
	if err != nil {
		log.Fatal(err)
	}
	cfg := clientv3.Config{
		Endpoints:   []string{"https://etcd1.example:2379"},
		TLS:         &tls.Config{MinVersion: tls.VersionTLS12}, // RootCAs: the cluster's CA, if not the system's
		Username:    "keytool-host",
		Password:    strings.TrimSpace(string(password)),
		DialTimeout: 5 * time.Second,
	}
	etcd.KeepLogin(&cfg, prefix)
	cli, err := clientv3.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	src, err := etcd.Open(context.Background(), etcd.Options{Client: cli, Prefix: prefix, Cache: "/var/lib/keytool/etcd.json"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
}
