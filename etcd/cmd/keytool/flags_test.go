package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPasswordNotInClear: etcd:// is plain TCP, so --etcd-user's password
// would go readable to whoever answers at the address (and with it, they
// can write the fleet's authorized_keys): refused with every member,
// loopback ones too (any local user may listen on a loopback port first:
// TestPasswordNotToASquatter), with the etcds:// command to use instead.
func TestPasswordNotInClear(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"etcds://10.0.0.5:2379/p", true},
		{"etcds://127.0.0.1:2379/p", true},
		{"etcd://127.0.0.1:2379/p", false},
		{"etcd://[::1]:2379/p", false},
		{"etcd://localhost:2379/p", false},
		{"etcd://10.0.0.5:2379/p", false},
		{"etcd://127.0.0.1:2379,10.0.0.5:2379/p", false},
		{"etcd://etcd.example:2379/p", false},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		f := &connFlags{user: "root", passwordFile: pw, dialTimeout: 5 * time.Second}
		_, _, err = f.config(u)
		want := "use etcds://" + u.Host + "/p --etcd-cacert"
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), "in clear") || !strings.Contains(err.Error(), "any local user") || !strings.Contains(err.Error(), want)):
			t.Errorf("%s with --etcd-user: err = %v, want it refused, saying why and %q", tc.url, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", tc.url, err)
		}
	}
}

// TestClientKeyMode: --etcd-key is a private key; like the password file
// (and OpenSSH's identity files), one that group or others may read is
// refused.
func TestClientKeyMode(t *testing.T) {
	dir := t.TempDir()
	writeCerts(t, dir)
	f := &connFlags{cert: filepath.Join(dir, "client.pem"), key: filepath.Join(dir, "client-key.pem")}
	if _, err := f.tls(); err != nil {
		t.Fatalf("key 0600: %v", err)
	}
	if err := os.Chmod(f.key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tls(); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("key 0644: err = %v, want it refused", err)
	}
}

// TestURLPasswordNotEchoed: credentials in a --store URL are refused
// without being printed, whatever else is wrong with the URL.
func TestURLPasswordNotEchoed(t *testing.T) {
	for _, raw := range []string{"etcd://root:hunter2@127.0.0.1:2379", "etcd://root:hunter2@127.0.0.1:2379/", "etcds://root:hunter2@127.0.0.1:2379/p?x=1"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = (&connFlags{dialTimeout: time.Second}).config(u)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "credentials go in") {
			t.Errorf("%s: %v", raw, err)
		}
	}
}
