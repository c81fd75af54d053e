package main

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// squatAuth is what any local user can run on a loopback port that etcd
// is not on (etcd restarting, or on another port): it records the
// password of every Authenticate it receives.
type squatAuth struct {
	etcdserverpb.UnimplementedAuthServer
	mu   sync.Mutex
	seen []string
}

func (a *squatAuth) Authenticate(_ context.Context, r *etcdserverpb.AuthenticateRequest) (*etcdserverpb.AuthenticateResponse, error) {
	a.mu.Lock()
	a.seen = append(a.seen, r.Name+":"+r.Password)
	a.mu.Unlock()
	return nil, status.Error(codes.InvalidArgument, "etcdserver: authentication failed, invalid user ID or password")
}

// TestPasswordNotToASquatter: --etcd-user with etcd:// to a loopback
// port is refused before anything is sent, so that whoever listens on
// that port — any local user may, while etcd restarts or where it is not
// — receives no password. (Found by review: etcd:// took a password for
// members on loopback, and a listener there got it in clear.)
func TestPasswordNotToASquatter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // as another, unprivileged, user would
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	a := &squatAuth{}
	etcdserverpb.RegisterAuthServer(srv, a)
	go srv.Serve(ln)
	defer srv.Stop()

	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret-admin-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	open := etcdFlags(fs)
	if err := fs.Parse([]string{"--etcd-user", "adm", "--etcd-password-file", pw, "--etcd-dial-timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("etcd://" + ln.Addr().String() + "/kt")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := open(ctx, u)
	if err == nil {
		st.Close()
		t.Errorf("--etcd-user with %s: opened, want it refused", u)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.seen {
		t.Errorf("the listener on %s received the credentials in clear: %q", ln.Addr(), s)
	}
}
