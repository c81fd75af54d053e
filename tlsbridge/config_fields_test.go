package tlsbridge

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// A tls.Config asking for renegotiation is refused by Configure, on
// either side, and left as it was: the policy allows none, and Configure
// never replaces a field the caller set. Before, applyPolicy reset
// Renegotiation to RenegotiateNever and Configure returned nil: a client
// that asked to renegotiate (a server that renegotiates for client
// certificates, IIS's per-path ones) silently got a configuration that
// fails at the server's HelloRequest instead of an error saying why.
func TestConfigureRefusesRenegotiation(t *testing.T) {
	srvHome, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv := mustServer(t, srvHome, ServerOptions{})
	for _, r := range []tls.RenegotiationSupport{tls.RenegotiateOnceAsClient, tls.RenegotiateFreelyAsClient} {
		for _, side := range []string{"server", "client"} {
			cfg := &tls.Config{Renegotiation: r}
			var err error
			if side == "server" {
				err = srv.Configure(cfg)
			} else {
				err = cli.client(t, ClientOptions{}).Configure(cfg, "127.0.0.1:1")
			}
			if err == nil || !strings.Contains(err.Error(), "Renegotiation") {
				t.Errorf("%s, Renegotiation %d: Configure: %v, want the conflict named", side, r, err)
			}
			if cfg.Renegotiation != r || cfg.VerifyConnection != nil || cfg.MinVersion != 0 {
				t.Errorf("%s, Renegotiation %d: Configure changed the config (Renegotiation %d, MinVersion %x)", side, r, cfg.Renegotiation, cfg.MinVersion)
			}
		}
	}
}
