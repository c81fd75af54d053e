package enroll

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedBody is a request body whose first Read reports on started, then
// waits for release: an attempt the limits let in stays in progress,
// its secret not yet read, until the test lets it go on.
type gatedBody struct {
	r       io.Reader
	started chan<- struct{}
	release <-chan struct{}
	once    sync.Once
}

func (b *gatedBody) Read(p []byte) (int, error) {
	b.once.Do(func() {
		b.started <- struct{}{}
		<-b.release
	})
	return b.r.Read(p)
}

// TestRateLimitAttemptsAtOnce: attempts with a wrong secret made all at
// once, from one address or from many, are let in no more than the
// limit allows — as many as if they were made one after the other —
// and the others are answered 429 without being examined. Every attempt
// let in is held inside the handler until all have been let in or
// refused, so no failure is counted before the last one passes the
// limits, whatever the scheduling.
func TestRateLimitAttemptsAtOnce(t *testing.T) {
	const attempts = 40
	for _, tc := range []struct {
		name   string
		limits Limits
		remote func(i int) string
		want   int
	}{
		{"one address", Limits{PerAddressBurst: 5}, func(int) string { return "192.0.2.1:40000" }, 5},
		{"everyone", Limits{GlobalBurst: 10}, func(i int) string { return fmt.Sprintf("192.0.2.%d:40000", i+1) }, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvHome, cli := newHome(t), newHome(t)
			t0 := time.Now()
			srv := startServer(t, srvHome, serverConfig{limits: tc.limits, now: func() time.Time { return t0 }})
			tok := srvHome.invite(t, "laptop", srv.addr)
			tok.Secret[0] ^= 0xff
			body, err := json.Marshal(Request{Name: tok.Name, Secret: base64.RawURLEncoding.EncodeToString(tok.Secret[:])})
			if err != nil {
				t.Fatal(err)
			}
			started, release := make(chan struct{}), make(chan struct{})
			codes := make(chan int, attempts)
			var wg sync.WaitGroup
			for i := range attempts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := httptest.NewRequest(http.MethodPost, Path, &gatedBody{r: strings.NewReader(string(body)), started: started, release: release})
					req.RemoteAddr = tc.remote(i)
					req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cli.id.Certificate.Leaf}}
					rec := httptest.NewRecorder()
					srv.handler.ServeHTTP(rec, req)
					codes <- rec.Code
				}()
			}
			// Each attempt is either let in, and waits in its body, or
			// refused at once.
			inside, refused := 0, 0
			for inside+refused < attempts {
				select {
				case <-started:
					inside++
				case code := <-codes:
					if code != http.StatusTooManyRequests {
						t.Fatalf("an attempt answered %d before any was let go on", code)
					}
					refused++
				}
			}
			close(release)
			wg.Wait()
			close(codes)
			wrong := 0
			for code := range codes {
				if code != http.StatusForbidden {
					t.Fatalf("an attempt let in answered %d, not 403 (wrong secret)", code)
				}
				wrong++
			}
			if inside != tc.want || wrong != tc.want {
				t.Fatalf("%d attempts at once: %d examined (%d told the secret is wrong), %d rate limited; the limit is %d",
					attempts, inside, wrong, refused, tc.want)
			}
			if n := strings.Count(srv.log.String(), "reason=rate_limited"); n != attempts-tc.want {
				t.Errorf("%d attempts logged as rate limited, not %d", n, attempts-tc.want)
			}
		})
	}
}

// TestRateLimitRefunds: an attempt that succeeds costs nothing, and
// neither does one the server fails (its invitations unreadable): after
// 4 failures of 5 allowed from an address, the right token enrolls, and
// one more failure is still allowed before the address is limited.
func TestRateLimitRefunds(t *testing.T) {
	t0 := time.Now()
	f := newFailure(t, serverConfig{now: func() time.Time { return t0 }, limits: Limits{PerAddressBurst: 5}})
	bad := f.tok
	bad.Secret[0] ^= 0xff
	for i := range 4 {
		if err := f.join(t, bad); !errors.Is(err, ErrWrongSecret) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	dir := InvitesDir(f.srvHome.dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the server's fault: not the client's failure
		var re *RefusedError
		if err := f.join(t, f.tok); !errors.As(err, &re) || re.Reason != ReasonInternal {
			t.Fatalf("attempt %d with the invitations directory open to all: %v", i+1, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.join(t, f.tok); err != nil {
		t.Fatalf("the right token after 4 failures: %v", err)
	}
	if _, err := newHome(t).join(t, bad); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("the fifth failure, after a success: %v", err)
	}
	if _, err := newHome(t).join(t, bad); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("the sixth failure: %v", err)
	}
}
