package enroll

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzParseInvite fuzzes the content of an invitation file (readInvite
// reads it, checks the file's mode and size, and hands the bytes to
// parseInvite). It checks that:
//   - an error is returned exactly when no invitation is, and names the file;
//   - an invitation returned has what the server needs (a name, a secret's
//     SHA-256, an expiry) and records its file;
//   - it writes back (the server rewrites it as the used record, with the
//     time of use and the client's key) and reads back the same, and the
//     writing is stable: written, read and written again, the same bytes.
func FuzzParseInvite(f *testing.F) {
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	inv := &Invitation{
		Name:              "alice",
		SecretSHA256:      hashSecret([32]byte{1, 2, 3}),
		ServerFingerprint: "SHA256:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",
		Addresses:         []string{"server.example:8443", "[2001:db8::1]:8443"},
		Created:           created,
		Expires:           created.Add(time.Hour),
	}
	pending, _ := inv.marshal()
	inv.Used, inv.ClientFingerprint = created.Add(time.Minute), "SHA256:0123456789"
	used, _ := inv.marshal()
	f.Add(pending)
	f.Add(used)
	f.Add(bytes.Replace(pending, []byte("Z"), []byte("+05:30"), -1))
	f.Add(bytes.Replace(pending, []byte(`"expires"`), []byte(`"EXPIRES"`), 1))
	f.Add([]byte(`{"name":"x","secret_sha256":"y","expires":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"name":"x","secret_sha256":"y","expires":"2030-01-01T00:00:00+23:59","addresses":null}`))
	f.Add([]byte(`{"name":"x","secret_sha256":"y","expires":"9999-12-31T23:59:59.999999999-23:59"}`))
	f.Add([]byte(`{"name":"x","secret_sha256":"y","expires":"2030-01-01T00:00:00Z","used":"bad"}`))
	f.Add([]byte(`{"name":"\ud800","secret_sha256":"y","expires":"2030-01-01T00:00:00Z","name":"z"}`))
	f.Add([]byte(`{"name":"x"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "/home/invites.d/alice.json"
		inv, err := parseInvite(path, data)
		if (inv == nil) == (err == nil) {
			t.Fatalf("invitation %v and error %v", inv, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		if inv.Name == "" || inv.SecretSHA256 == "" || inv.Expires.IsZero() || inv.File != path {
			t.Fatalf("accepted an incomplete invitation %+v", inv)
		}
		if s := inv.Status(inv.Expires); s != "expired" && s != "used" {
			t.Fatalf("status %q at its expiry", s)
		}

		out, again := writeRead(t, path, inv, "the invitation")
		if out2, err := again.marshal(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("writing is not stable (%v):\n%s\n%s", err, out, out2)
		}

		// What serve does with a claimed invitation: it must stay writable.
		inv.Used, inv.ClientFingerprint = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "SHA256:client"
		_, back := writeRead(t, path, inv, "the used record")
		if back.Status(time.Time{}) != "used" {
			t.Fatalf("the used record reads back as %q", back.Status(time.Time{}))
		}
	})
}

// writeRead writes inv and parses it back, which must give the same
// invitation; it returns what was written and what was read.
func writeRead(t *testing.T, path string, inv *Invitation, what string) ([]byte, *Invitation) {
	t.Helper()
	out, err := inv.marshal()
	if err != nil {
		t.Fatalf("%s cannot be written: %v\n%+v", what, err, inv)
	}
	back, err := parseInvite(path, out)
	if err != nil {
		t.Fatalf("%s, written, does not parse: %v\n%s", what, err, out)
	}
	sameInvite(t, inv, back)
	return out, back
}

func sameInvite(t *testing.T, a, b *Invitation) {
	t.Helper()
	if a.Name != b.Name || a.SecretSHA256 != b.SecretSHA256 || a.ServerFingerprint != b.ServerFingerprint ||
		!slices.Equal(a.Addresses, b.Addresses) || a.ClientFingerprint != b.ClientFingerprint || a.File != b.File ||
		!a.Created.Equal(b.Created) || !a.Expires.Equal(b.Expires) || !a.Used.Equal(b.Used) {
		t.Fatalf("read back differently:\n%+v\n%+v", a, b)
	}
}
