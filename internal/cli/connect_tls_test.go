package cli

import (
	"strings"
	"testing"
)

// TestConnectAddressWithoutPort: keytool connect with an address that is
// not host:port is a usage error (exit 2), in a real process, never a
// panic — the library used to panic on such an address.
func TestConnectAddressWithoutPort(t *testing.T) {
	home := joinHome(t) // an identity, so that nothing else stops connect first
	for _, addr := range []string{"hostonly", "host:", "[::1", "a:b:c"} {
		out, e, code := keytoolIn(t, home, "connect", addr)
		if code != 2 || out != "" {
			t.Errorf("connect %q: exit %d, want 2; stdout %q\n%s", addr, code, out, e)
		}
		if !strings.Contains(e, "host:port") || !strings.Contains(e, "Run 'keytool connect --help' for usage.") {
			t.Errorf("connect %q: no usage message:\n%s", addr, e)
		}
		if strings.Contains(e, "panic") || strings.Contains(e, "goroutine") {
			t.Errorf("connect %q panicked:\n%s", addr, e)
		}
	}
}
