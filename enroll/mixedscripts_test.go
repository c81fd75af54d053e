package enroll

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
)

// A name mixing scripts ("\u0430dmin": a Cyrillic а before Latin letters,
// read "admin") is refused wherever enrollment is given a name: an
// invitation is not made (nothing written), a token is neither encoded
// nor decoded (one an earlier version encoded: its name refused,
// ErrTokenName, as a name with an invisible character is), and an
// enrollment request naming one is a bad request (docs/design.md, "Names").
func TestMixedScriptNamesRefused(t *testing.T) {
	const name = "\u0430dmin"
	home := newHome(t)
	dir := InvitesDir(home.dir)
	var se *keydir.NameScriptError
	if _, _, err := NewInvite(dir, home.key(), InviteOptions{Name: name, Addresses: []string{"a:1"}}); !errors.As(err, &se) || se.Char != 0x430 {
		t.Fatalf("NewInvite(%q): %v; want a *keydir.NameScriptError", name, err)
	}
	if des, _ := os.ReadDir(dir); len(des) > 0 {
		t.Fatalf("a refused invitation wrote %v", des)
	}

	tok := Token{Name: name, Addresses: []string{"a:1"}, Server: home.key().PublicKey().SPKIHash(), Expires: time.Unix(2e9, 0).UTC()}
	if _, err := tok.Encode(); !errors.As(err, &se) {
		t.Fatalf("Encode: %v; want a *keydir.NameScriptError", err)
	}
	if _, err := DecodeToken(tok.encode()); !errors.Is(err, ErrTokenName) || !errors.As(err, &se) || !strings.Contains(err.Error(), `(keydir: invalid name "\u0430dmin": it mixes the scripts`) {
		t.Fatalf("DecodeToken of a token an earlier version made: %v; want its name refused, naming the scripts", err)
	}

	good := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, SecretSize))
	var req Request
	got, _, ref := decodeRequest([]byte(`{"name":"`+name+`","secret":"`+good+`"}`), &req)
	if ref == nil || ref.reason != ReasonBadRequest || got != "" || !strings.Contains(ref.msg, `"\u0430dmin": it mixes the scripts Cyrillic and Latin`) {
		t.Fatalf("a request naming %q: %q, %+v; want a bad request naming the scripts", name, got, ref)
	}
}
