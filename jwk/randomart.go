package jwk

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"strings"
)

// The field of the drunken bishop, as OpenSSH draws it (sshkey.c,
// fingerprint_randomart): 17 columns and 9 rows.
const (
	artBase = 8
	artRows = artBase + 1
	artCols = artBase*2 + 1
)

// artSymbols are the marks for 0, 1, 2, … visits; the last two are the
// start (S) and the end (E) of the walk.
const artSymbols = " .o+=*BOX@%&#/^SE"

// Randomart draws OpenSSH's "visual host key" of a hash: the walk of a
// bishop that starts in the middle of a 17×9 field and takes four
// diagonal steps per byte (two bits each, lowest first), stopping at the
// walls; each square shows how often it was visited. The top border
// carries "[keyType bits]" and the bottom one "[hashName]", so that
//
//	Randomart(sha256(wire blob), "ED25519", 256, "SHA256")
//
// is, byte for byte, what ssh-keygen -lv prints for an Ed25519 key. The
// picture has 11 lines and no final newline.
func Randomart(hash []byte, keyType string, bits int, hashName string) string {
	var field [artCols][artRows]int
	x, y := artCols/2, artRows/2
	most := len(artSymbols) - 1 // the end mark
	for _, in := range hash {
		for range 4 {
			x = min(max(x+int(in&1)*2-1, 0), artCols-1)
			y = min(max(y+int(in>>1&1)*2-1, 0), artRows-1)
			if field[x][y] < most-2 {
				field[x][y]++
			}
			in >>= 2
		}
	}
	field[artCols/2][artRows/2] = most - 1
	field[x][y] = most

	title := fmt.Sprintf("[%s %d]", keyType, bits)
	if len(title) > artCols {
		title = "[" + keyType + "]"
	}
	var b strings.Builder
	artBorder(&b, title)
	b.WriteByte('\n')
	for y := range artRows {
		b.WriteByte('|')
		for x := range artCols {
			b.WriteByte(artSymbols[min(field[x][y], most)])
		}
		b.WriteString("|\n")
	}
	artBorder(&b, "["+hashName+"]")
	return b.String()
}

// artBorder writes a border line with label centred as OpenSSH centres it
// (the odd dash goes right), cut to the field's width less one, as
// OpenSSH's snprintf into a buffer of the field's width cuts it.
func artBorder(b *strings.Builder, label string) {
	if len(label) > artCols-1 {
		label = label[:artCols-1]
	}
	left := (artCols - len(label)) / 2
	b.WriteByte('+')
	b.WriteString(strings.Repeat("-", left))
	b.WriteString(label)
	b.WriteString(strings.Repeat("-", artCols-left-len(label)))
	b.WriteByte('+')
}

// artTitle is the key type and size OpenSSH puts at the top of a picture
// (sshkey_type, sshkey_size): "ED25519" 256, "ECDSA" 256/384/521, "RSA"
// and the modulus size.
func (k *Key) artTitle() (string, int) {
	switch p := k.public.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA", p.Curve.Params().BitSize
	case *rsa.PublicKey:
		return "RSA", p.N.BitLen()
	case ed25519.PublicKey:
		return "ED25519", 256
	}
	return "UNKNOWN", 0
}

// Randomart draws the key's SPKI hash — its identity, what Fingerprint
// prints — as OpenSSH draws a host key's hash, labelled "[SPKI SHA256]" at
// the bottom: ssh-keygen's picture of the same key, drawn over the SSH
// wire encoding (SSHRandomart), is another one.
func (k *Key) Randomart() string {
	typ, bits := k.artTitle()
	return Randomart(k.sum[:], typ, bits, "SPKI SHA256")
}

// SSHRandomart returns the picture ssh-keygen -lv draws for the key: the
// SHA-256 of its SSH wire encoding. ok is false for a key that SSH cannot
// express.
func (k *Key) SSHRandomart() (art string, ok bool) {
	sum, ok := k.sshHash()
	if !ok {
		return "", false
	}
	typ, bits := k.artTitle()
	return Randomart(sum[:], typ, bits, "SHA256"), true
}
