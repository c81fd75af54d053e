package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/bench/internal/fixturekeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// BenchmarkColdStart measures a server's cold start: from nothing to the
// first admitted handshake, over a directory of BENCH_DIR_KEYS (100,000)
// single-key JWK files, one of them the client's, against the parallel
// read-only floor of the same directory, measured in the same iteration
// (os.ReadDir and os.ReadFile of every file, with the loader's
// parallelism: readFloor).
//
// A second floor, readFloorRaw, reads the same files with the four
// system calls a file keytool's reader makes (open, fstat, read, close)
// instead of os.ReadFile's ten: what reading costs at the least.
//
// A cold start is: a watched store over the directory (authkeys.Open, or
// OpenEarly as the proxy opens it: below), the server's identity (its certificate, signed
// now) and TLS configuration (tlsbridge.NewServer), and one full mutual
// TLS 1.3 handshake from a client on 127.0.0.1 whose key the store
// admits. The listening socket and the client's configuration (the
// client is another program) are made before the clock starts. The page
// cache holds the files in both measurements; a GC runs before each.
//
// The keys are the P-256 fixture keys (a directory of P-256 keys is the
// common case: keytool's default type). Each iteration measures the floor
// and the cold start one after the other, in an order that alternates;
// the reported figures are medians over the iterations:
//
//	cold-ms    the cold start
//	floor-ms   the read-only floor (os.ReadFile)
//	rawfloor-ms  the read-only floor with four system calls a file
//	store-ms   of the cold start, the store's load alone (early: to
//	           the full load's publication)
//	before-load  the share of iterations whose handshake ended before
//	           the full load was published
//	ratio      cold start ÷ floor, median of the iterations' ratios
//	ratio-rawfloor  cold start ÷ raw floor, the same way
//
// Two ways to start are measured, each against its own floors:
//
//	open   authkeys.Open: every file is read before the first decision
//	early  authkeys.OpenEarly over the same directory with the admin
//	       index an admin command leaves (made before the clock starts,
//	       its files' stamps recorded): the first decision is taken from
//	       the index proved complete by every file's stamp, while the
//	       full load follows (docs/design.md, "Early decisions"); the
//	       iteration ends once the full load is published as well:
//	       store-ms is the time to that, from the start
//
//	go test -run '^$' -bench ColdStart -benchtime 10x -timeout 30m
func BenchmarkColdStart(b *testing.B) {
	n := envInt("BENCH_DIR_KEYS", 100_000)
	t := jwk.EC256
	dir := fixture(b, fmt.Sprintf("coldstart-%d", n), func(d string) error {
		if err := fixturekeys.WriteFiles(d, n-1, func(int) os.FileMode { return 0o644 }); err != nil {
			return err
		}
		return jwk.WritePublicKeyFile(filepath.Join(d, "client.json"), clientKey(b, t), jwk.JWK, jwk.CreateNew)
	})
	// The fixtures' directory is the top of the trust tree, as a home is.
	opts := authkeys.Options{Dirs: []string{dir}, Home: filepath.Dir(dir)}
	b.Run("open", func(b *testing.B) {
		coldStart(b, dir, n, t, opts, authkeys.Open)
	})
	b.Run("early", func(b *testing.B) {
		opts := opts
		opts.Index = dir + ".index"
		if _, err := os.Stat(opts.Index); err != nil {
			// The index an admin command makes, with every file's stamp:
			// a file's is recorded once it is older than keydir.StampRacy.
			time.Sleep(3 * time.Second)
			_, finish := authkeys.LoadFor(opts, authkeys.Lookups{})
			finish()
		}
		coldStart(b, dir, n, t, opts, authkeys.OpenEarly)
	})
}

// coldStart is BenchmarkColdStart over dir, of n files, one of them the
// key of type t of the client, with a store open made over opts.
func coldStart(b *testing.B, dir string, n int, t jwk.Type, opts authkeys.Options, open func(context.Context, authkeys.Options) *authkeys.Store) {
	srvKey := serverKey(b, t)

	floor := func(read func(*testing.B, []string)) time.Duration {
		start := time.Now()
		ents, err := os.ReadDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		files := make([]string, len(ents))
		for i, e := range ents {
			files[i] = filepath.Join(dir, e.Name())
		}
		read(b, files)
		return time.Since(start)
	}
	var early int // iterations whose handshake ended before the full load
	cold := func() (total, load time.Duration) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		cliCfg := keytoolClient(b, clientKey(b, t), srvKey, ln.Addr().String())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		runtime.GC()

		start := time.Now()
		store := open(ctx, opts)
		select {
		case <-store.Loaded(): // Open's: loaded as it returns
			load = time.Since(start)
		default:
		}
		defer store.Close()
		id, err := tlsbridge.NewIdentity(srvKey, tlsbridge.CertOptions{})
		if err != nil {
			b.Fatal(err)
		}
		srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: store})
		if err != nil {
			b.Fatal(err)
		}
		s := &server{ln: tls.NewListener(ln, srv.TLSConfig())}
		s.wg.Add(1)
		go s.acceptOne()
		if _, err := handshake(ln.Addr().String(), cliCfg); err != nil {
			b.Fatalf("first handshake: %v (server: %v; store: %d keys, problems %v)", err, s.err(), len(store.Entries()), store.Problems())
		}
		total = time.Since(start)
		select {
		case <-store.Loaded():
		default:
			early++
		}
		if load == 0 {
			<-store.Loaded()
			load = time.Since(start)
		}
		if err := s.err(); err != nil {
			b.Fatalf("server: %v", err)
		}
		ln.Close()
		s.wg.Wait()
		if got := len(store.Entries()); got != n {
			b.Fatalf("store holds %d keys, want %d", got, n)
		}
		return total, load
	}

	var colds, floors, raws, loads []time.Duration
	var ratios, rawRatios []float64
	i := 0
	for b.Loop() {
		var c, l, f, r time.Duration
		measureFloors := func() {
			runtime.GC()
			f = floor(readFloor)
			runtime.GC()
			r = floor(readFloorRaw)
		}
		if i%2 == 0 {
			measureFloors()
			c, l = cold()
		} else {
			c, l = cold()
			measureFloors()
		}
		i++
		colds, floors, raws, loads = append(colds, c), append(floors, f), append(raws, r), append(loads, l)
		ratios = append(ratios, float64(c)/float64(f))
		rawRatios = append(rawRatios, float64(c)/float64(r))
	}
	b.ReportMetric(ms(median(colds)), "cold-ms")
	b.ReportMetric(ms(median(floors)), "floor-ms")
	b.ReportMetric(ms(median(raws)), "rawfloor-ms")
	b.ReportMetric(ms(median(loads)), "store-ms")
	b.ReportMetric(float64(early)/float64(i), "before-load")
	slices.Sort(ratios)
	slices.Sort(rawRatios)
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
	b.ReportMetric(ratios[0], "ratio-min")
	b.ReportMetric(ratios[len(ratios)-1], "ratio-max")
	b.ReportMetric(rawRatios[len(rawRatios)/2], "ratio-rawfloor")
}

// readFloorRaw is readFloor with the fewest system calls that read a
// file — open, fstat (for its size), read, close — and no os.File: the
// floor of what any reader of these files can do, which os.ReadFile
// exceeds by six system calls a file on Linux (docs/benchmarks.md, "Cold
// start to the first admitted handshake").
func readFloorRaw(b *testing.B, files []string) {
	forEachFile(b, files, func(path string) error {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return err
		}
		_, err = syscall.Read(fd, make([]byte, st.Size+1))
		return err
	})
}

// acceptOne serves the first connection of s.ln as serve's servers do
// (handshake, the client's byte, close), recording a failed handshake.
// The caller adds it to s.wg.
func (s *server) acceptOne() {
	defer s.wg.Done()
	c, err := s.ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.(*tls.Conn).Handshake(); err != nil {
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		return
	}
	var buf [1]byte
	_, _ = c.Read(buf[:])
}
