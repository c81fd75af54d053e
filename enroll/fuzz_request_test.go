package enroll

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// FuzzDecodeRequest fuzzes the body of an enrollment request, which comes
// from any client that completes a TLS handshake. It checks that:
//   - a refusal is exactly a body that is not a Request, names an invalid
//     name, or carries a secret that is not SecretSize bytes of base64url
//     (judged here independently), and is a counted 400 bad_request that
//     leaks no sum;
//   - the name comes back only once it is valid, and an accepted name
//     keeps the invitation's files inside the invitations directory;
//   - an accepted request's sum is the SHA-256 of its secret, and the
//     request re-encoded canonically decodes to the same name and sum.
func FuzzDecodeRequest(f *testing.F) {
	secret := bytes.Repeat([]byte{7}, SecretSize)
	good := base64.RawURLEncoding.EncodeToString(secret)
	for _, s := range []string{
		`{"name":"alice","secret":"` + good + `"}`,
		`{"NAME":"alice","Secret":"` + good + `","extra":[1,2]}`,
		`{"name":"bob","secret":"x","name":"alice","secret":"` + good + `"}`,
		`{"name":"alice","secret":"` + good[:20] + "\n" + good[20:] + `"}`,
		`{"name":"alice","secret":"` + good + `="}`,
		`{"name":"alice","secret":"` + good[:len(good)-1] + `"}`,
		`{"name":"alice","secret":"` + base64.StdEncoding.EncodeToString(secret) + `"}`,
		`{"name":"../alice","secret":"` + good + `"}`,
		`{"name":".alice","secret":"` + good + `"}`,
		`{"name":"al\u0000ice","secret":"` + good + `"}`,
		`{"name":"al\nice","secret":"` + good + `"}`,
		`{"name":"\ud800","secret":"` + good + `"}`,
		`{"name":"alice"}`,
		`{"name":1,"secret":"` + good + `"}`,
		`null`, `[]`, `{}`, ``, `{"name":"alice","secret":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req Request
		name, sum, ref := decodeRequest(body, &req)

		// The independent judgement of the body.
		var want Request
		jsonErr := json.Unmarshal(body, &want)
		nameOK := jsonErr == nil && keydir.CheckName(want.Name) == nil
		wantSecret, b64Err := base64.RawURLEncoding.DecodeString(want.Secret)
		secretOK := b64Err == nil && len(wantSecret) == SecretSize

		if ref != nil {
			if ref.reason != ReasonBadRequest || !ref.count || ref.msg == "" || reasonStatus[ref.reason] != http.StatusBadRequest {
				t.Fatalf("refusal %+v: want a counted, explained bad_request", ref)
			}
			if sum != ([32]byte{}) {
				t.Fatalf("refused, but the sum %x came back", sum)
			}
			if nameOK && secretOK {
				t.Fatalf("refused a good request (%q, %q): %s", want.Name, want.Secret, ref.msg)
			}
			switch {
			case name == "" && nameOK:
				t.Fatalf("refused for its secret, but the valid name %q was not returned", want.Name)
			case name != "" && (!nameOK || name != want.Name):
				t.Fatalf("returned name %q with a refusal, want it only when valid (%q, valid %v)", name, want.Name, nameOK)
			}
			// The refusal is logged, which the secret never is. (Only a
			// secret of a real one's length is looked for, outside the
			// quoted name, so as not to find it in the message's words.)
			if msg := strings.ReplaceAll(ref.msg, strconv.Quote(want.Name), ""); jsonErr == nil &&
				len(want.Secret) >= base64.RawURLEncoding.EncodedLen(SecretSize) && strings.Contains(msg, want.Secret) {
				t.Fatalf("the refusal quotes the secret %q: %s", want.Secret, ref.msg)
			}
			return
		}

		if !nameOK || !secretOK {
			t.Fatalf("accepted %q: valid JSON %v, name %v, secret %v", body, jsonErr == nil, nameOK, secretOK)
		}
		if name != want.Name || req != want {
			t.Fatalf("accepted name %q, request %+v; want %q, %+v", name, req, want.Name, want)
		}
		if sum != sha256.Sum256(wantSecret) {
			t.Fatalf("sum %x is not the SHA-256 of the secret", sum)
		}
		const dir = "/home/invites.d"
		for _, p := range []string{filepath.Join(dir, name+".json"), filepath.Join(dir, usedDir, name+".json")} {
			if !strings.HasPrefix(p, dir+"/") || filepath.Base(p) != name+".json" {
				t.Fatalf("accepted name %q leads to %s, outside %s", name, p, dir)
			}
		}

		canon, err := json.Marshal(Request{Name: name, Secret: base64.RawURLEncoding.EncodeToString(wantSecret)})
		if err != nil {
			t.Fatal(err)
		}
		var again Request
		name2, sum2, ref2 := decodeRequest(canon, &again)
		if ref2 != nil || name2 != name || sum2 != sum {
			t.Fatalf("re-encoded %s: name %q sum %x refusal %v; first %q %x", canon, name2, sum2, ref2, name, sum)
		}
	})
}
