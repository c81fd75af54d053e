package enroll

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
)

// Only a key the server does not know at all may enroll: a key whose
// authorization expired (or that is limited to other networks, or that a
// skipped file may hold) is refused, not invited to enroll under a new
// name with a token — over HTTP (WithEnrollment) and connection by
// connection (ServeConn, as keytool proxy --enroll does).
func TestOnlyUnknownKeysMayEnroll(t *testing.T) {
	srvHome := newHome(t)
	cli := newHome(t)
	k := cli.key().PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetString(jwk.AttrExpires, "2001-01-01T00:00:00Z")
	if _, err := srvHome.clients(t).Add(k, "old", authkeys.AddNew); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []bool{false, true} {
		t.Run(fmt.Sprintf("conn=%v", conn), func(t *testing.T) {
			s := startServer(t, srvHome, serverConfig{conn: conn})
			name := fmt.Sprintf("new-%v", conn)
			tok := srvHome.invite(t, name, s.addr)
			if res, err := Join(context.Background(), cli.id, tok, cli.hosts(t), nil); err == nil {
				t.Fatalf("an expired key enrolled: %+v", res)
			}
			if _, err := os.Stat(filepath.Join(srvHome.dir, "authorized_keys.d", name+".json")); !os.IsNotExist(err) {
				t.Errorf("an expired key was authorized under %q (%v)", name, err)
			}
			// The invitation was not used: a key nobody knows still can.
			fresh := newHome(t)
			if _, err := Join(context.Background(), fresh.id, tok, fresh.hosts(t), nil); err != nil {
				t.Errorf("an unknown key with the same token: %v", err)
			}
		})
	}
}

// While an authorized-keys file is skipped, an unknown key may be in it,
// with limits ("expires", "from") that enrolling under a new name would
// shed: nobody enrolls until the file is fixed.
func TestNoEnrollmentWhileFilesAreSkipped(t *testing.T) {
	srvHome := newHome(t)
	cli := newHome(t)
	k := cli.key().PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetString(jwk.AttrExpires, "2001-01-01T00:00:00Z")
	file := filepath.Join(srvHome.dir, "authorized_keys.d", "limited.json")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(file, k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o666); err != nil { // skipped: others may write it
		t.Fatal(err)
	}
	for _, conn := range []bool{false, true} {
		t.Run(fmt.Sprintf("conn=%v", conn), func(t *testing.T) {
			s := startServer(t, srvHome, serverConfig{conn: conn})
			name := fmt.Sprintf("shed-%v", conn)
			tok := srvHome.invite(t, name, s.addr)
			if res, err := Join(context.Background(), cli.id, tok, cli.hosts(t), nil); err == nil {
				t.Fatalf("a key enrolled while the file that limits it was skipped: %+v", res)
			}
			if _, err := os.Stat(filepath.Join(srvHome.dir, "authorized_keys.d", name+".json")); !os.IsNotExist(err) {
				t.Errorf("the key was authorized under %q (%v)", name, err)
			}
		})
	}
}
