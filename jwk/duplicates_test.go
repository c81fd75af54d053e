package jwk

import (
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
)

// Two members whose names Go's encoding/json takes for one — equal, or
// equal but for case — are refused wherever keytool reads a key's members,
// naming the member: keytool would read one and the others another.
func TestDuplicateNames(t *testing.T) {
	ec := testKey(t, EC256)
	other := mustGenerate(t, EC256)
	ow := jsonObject(t, mustMarshal(t, other, JWK, false))
	otherX, otherY := ow["x"].(string), ow["y"].(string)
	pub := `"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `"`
	sshLine := strings.TrimSpace(string(sshMarshalAuthorized(mustSSHPub(t, ec))))
	spki := ec.SPKI()
	pemWith := func(headers ...string) []byte {
		b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
		begin := len("-----BEGIN PUBLIC KEY-----\n")
		return []byte(string(b[:begin]) + strings.Join(headers, "\n") + "\n\n" + string(b[begin:]))
	}
	caseDup := "names differ only in case; Go's encoding/json would read one as the other"
	runBadCases(t, []badCase{
		// One key to keytool (x, y), another to encoding/json (X, Y, the
		// last), and keytool wrote the X and Y back as attributes.
		{name: "JWK x/y and X/Y", data: []byte("{" + pub + ",\n\"X\":\"" + otherX + `","Y":"` + otherY + `"}`),
			subs: []string{`member "X": duplicate of member "x" (` + caseDup + ")"}, line: 2, member: "X"},
		{name: "JWK kid twice", data: []byte("{" + pub + `,"kid":"a","kid":"b"}`),
			subs: []string{`invalid JSON: member "kid" appears twice`}, line: 1, member: ""},
		{name: "JWK Kty beside kty", data: []byte(`{"Kty":"RSA",` + pub + `}`),
			subs: []string{`member "kty": duplicate of member "Kty"`, caseDup}, line: 1, member: "kty"},
		// U+212A KELVIN SIGN folds to k: encoding/json reads it as "kid".
		{name: "JWK kid with a Kelvin sign", data: []byte("{" + pub + `,"kid":"a","` + "\u212aid" + `":"b"}`),
			subs: []string{`duplicate of member "kid"`}, line: 1, member: "\u212aid"},
		{name: "JWK from and From", data: []byte("{" + pub + `,"from":["10.0.0.0/8"],"From":["0.0.0.0/0"]}`),
			subs: []string{`duplicate of member "from"`}, line: 1, member: "From"},
		{name: "JWK unknown attributes differing in case", data: []byte("{" + pub + `,"label":"a","LABEL":"b"}`),
			subs: []string{`duplicate of member "label"`}, line: 1, member: "LABEL"},
		{name: "JWK Set keys and Keys", data: []byte(`{"keys":[{` + pub + `}],"Keys":[]}`),
			subs: []string{`duplicate of member "keys"`}, line: 1, member: "Keys"},
		{name: "JWK Set element with y and Y", data: []byte("{\"keys\":[\n{" + pub + "},\n{" + pub + ",\n\"Y\":\"" + otherY + "\"}]}"),
			subs: []string{`duplicate of member "y"`}, line: 4, member: "keys[1].Y"},

		// A lone case variant of a name keytool or go-jose reads is one
		// member to keytool and another to encoding/json.
		{name: "JWK D on a public key", data: []byte("{" + pub + `,"D":"` + vecD + `"}`),
			subs: []string{`a case variant of "d"`}, line: -1, member: "D"},
		{name: "JWK From alone", data: []byte("{" + pub + `,"From":["10.0.0.0/8"]}`),
			subs: []string{`a case variant of "from"`}, line: -1, member: "From"},
		{name: "JWK Set element with KID", data: []byte(`{"keys":[{` + pub + `,"KID":"a"}]}`),
			subs: []string{`a case variant of "kid"`}, line: -1, member: "keys[0].KID"},

		// PEM: encoding/pem keeps the last of two equal headers.
		{name: "PEM from twice", data: pemWith("from: 10.0.0.0/8", "comment: c", "from: 0.0.0.0/0"),
			subs: []string{`PEM header "from" appears twice, on lines 2 and 4`}, line: 4, member: ""},
		{name: "PEM From and from", data: pemWith("From: 0.0.0.0/0", "from: 10.0.0.0/8"),
			subs: []string{`PEM header "from": duplicate of header "From" on line 2`, caseDup}, line: 3, member: ""},
		{name: "PEM kid twice, spaced", data: pemWith("kid: a", " kid : b"),
			subs: []string{`PEM header "kid" appears twice`}, line: 3, member: ""},
		{name: "PEM From alone", data: pemWith("From: 10.0.0.0/8"),
			subs: []string{`PEM header "From": a case variant of "from"`}, line: 1, member: ""},
		{name: "PEM second block with duplicate", data: append(mustMarshal(t, ec, PEM, false), pemWith("comment: a", "Comment: b")...),
			subs: []string{`PEM header "Comment": duplicate of header "comment" on line 6`}, line: 7, member: ""},

		// authorized_keys: OpenSSH refuses a second from= too.
		{name: "OpenSSH two from", data: []byte("# keys\n" + sshLine + "\n" + `from="10.0.0.0/8",from="192.168.0.0/16" ` + sshLine + "\n"),
			subs: []string{`multiple "from" clauses`}, line: 3, member: ""},
		{name: "OpenSSH from and FROM", data: []byte(`from="10.0.0.0/8",FROM="192.168.0.0/16" ` + sshLine),
			subs: []string{`multiple "from" clauses`}, line: 1, member: ""},
	})
}

// Names that differ only in case are not duplicates when they are not the
// same name to encoding/json either, nor are names keytool does not know.
func TestDistinctNamesAccepted(t *testing.T) {
	pub := `"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `"`
	for _, data := range []string{
		"{" + pub + `,"keyID":"x","kid2":"y","Label":"z"}`,
		"{" + pub + `,"x_":"a","X5":"b"}`,
		`{"keys":[{` + pub + `,"kid":"a"},{` + pub + `,"kid":"b"}]}`,
	} {
		if _, err := Parse([]byte(data)); err != nil {
			t.Errorf("%s: %v", data, err)
		}
	}
	k := testKey(t, EC256)
	line := `from="10.0.0.0/8" ` + strings.TrimSpace(string(sshMarshalAuthorized(mustSSHPub(t, k))))
	if _, err := Parse([]byte(line + "\n" + line + "\n")); err != nil {
		t.Errorf("one from= on each of two lines: %v", err)
	}
}

// keytool does not write what it would not read: attributes whose names
// encoding/json would take for one, or for a key member, are refused.
func TestMarshalRefusesCaseVariants(t *testing.T) {
	k := testKey(t, EC256)
	for _, attrs := range []Attributes{
		{"from": json.RawMessage(`["10.0.0.0/8"]`), "From": json.RawMessage(`["0.0.0.0/0"]`)},
		{"X": json.RawMessage(`"` + vecX + `"`)},
		{"KID": json.RawMessage(`"a"`)},
		{"label": json.RawMessage(`"a"`), "Label": json.RawMessage(`"b"`)},
	} {
		a := withAttrs(k, attrs)
		for _, f := range []Format{JWK, PEM} {
			out, err := a.MarshalPublic(f)
			if err == nil {
				t.Errorf("%s: attributes %v written:\n%s", f, attrs, out)
				continue
			}
			wantSubstrings(t, err.Error(), "case")
		}
	}
}
