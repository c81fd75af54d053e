package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/grpclog"
	grpcstatus "google.golang.org/grpc/status"
)

// newHome writes an identity into a fresh home and returns its public key.
func newHome(t *testing.T) (string, *jwk.Key) {
	t.Helper()
	home := t.TempDir()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateKeyFile(filepath.Join(home, "key.json"), k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	return home, k.PublicKey()
}

// TestGRPC runs the example: an authorized client gets the health status
// over keytool's mutual TLS, and a client whose key is not authorized is
// refused.
func TestGRPC(t *testing.T) {
	// Before any other use of gRPC, as SetLoggerV2 requires: once, as the
	// test may run again (-count) while an earlier server's goroutines end.
	logsOnce.Do(func() { grpclog.SetLoggerV2(logs) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	serverHome, serverKey := newHome(t)
	clientHome, clientKey := newHome(t)
	strangerHome, strangerKey := newHome(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // run listens on it again; the port stays free meanwhile on loopback

	auth := authkeys.Load(authkeys.HomeOptions(serverHome))
	if _, err := auth.Add(clientKey, "grpc-client", authkeys.AddNew); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{clientHome, strangerHome} {
		hosts := knownhosts.Load(knownhosts.HomeOptions(h))
		if _, err := hosts.Add(addr, serverKey); err != nil {
			t.Fatal(err)
		}
	}

	status, err := run(ctx, serverHome, clientHome, addr)
	if err != nil || !strings.HasPrefix(status, "health: SERVING") {
		t.Fatalf("authorized client: %q, %v", status, err)
	}
	// The stranger's identity is made like the client's and pins the same
	// server key; only its authorization differs. The call fails with
	// Unavailable, and the server's handshake failed because the
	// stranger's key is not authorized: gRPC logs why it could not set up
	// the connection. (The client alone cannot tell why: in TLS 1.3 it
	// reads the server's bad_certificate alert only if it does not write
	// into the closed connection first, and then it reports a broken
	// pipe.)
	status, err = run(ctx, serverHome, strangerHome, addr)
	if err == nil {
		t.Fatalf("unauthorized client got %q", status)
	}
	if code := grpcstatus.Code(err); code != codes.Unavailable {
		t.Fatalf("unauthorized client: want code Unavailable, got %v: %v", code, err)
	}
	want := "key " + strangerKey.Fingerprint() + " is not authorized"
	if !logs.waitFor(want, 5*time.Second) {
		t.Fatalf("unauthorized client: %v\nthe server never said %q; gRPC's log:\n%s", err, want, logs)
	}
	t.Logf("unauthorized client refused: %v", err)
}

var (
	logs     = &grpcLog{LoggerV2: grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard)}
	logsOnce sync.Once
)

// grpcLog keeps what gRPC logs, to read the server's reason for closing
// a connection in its handshake.
type grpcLog struct {
	grpclog.LoggerV2 // the levels not kept: discarded
	mu               sync.Mutex
	lines            []string
}

func (l *grpcLog) keep(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *grpcLog) Info(args ...any)                 { l.keep(fmt.Sprint(args...)) }
func (l *grpcLog) Infoln(args ...any)               { l.keep(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }
func (l *grpcLog) Infof(format string, args ...any) { l.keep(fmt.Sprintf(format, args...)) }

func (l *grpcLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitFor reports whether a line holding s is logged within d: the server
// logs after it has sent the alert and closed, so maybe after the client
// has failed.
func (l *grpcLog) waitFor(s string, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(l.String(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
