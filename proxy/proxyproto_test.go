package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/tlsbridge"
)

// parseProxyV2 reads a PROXY protocol v2 header as the specification
// tells a receiver to (section 2.2), strictly: the signature, version 2,
// the command, the family's address block, then TLVs filling the length
// exactly. It returns the header's length.
func parseProxyV2(b []byte) (src, dst netip.AddrPort, tlvs []tlv, n int, err error) {
	if len(b) < 16 || !bytes.Equal(b[:12], proxyV2Sig[:]) {
		return src, dst, nil, 0, errors.New("no v2 signature")
	}
	if b[12]>>4 != 2 {
		return src, dst, nil, 0, errors.New("not version 2")
	}
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if len(b) < 16+length {
		return src, dst, nil, 0, errors.New("truncated")
	}
	body := b[16 : 16+length]
	switch {
	case b[12] == proxyV2Local:
	case b[12] == proxyV2Cmd && b[13] == proxyV2TCP4 && len(body) >= 12:
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
		body = body[12:]
	case b[12] == proxyV2Cmd && b[13] == proxyV2TCP6 && len(body) >= 36:
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
		body = body[36:]
	default:
		return src, dst, nil, 0, errors.New("unknown command or family, or a short address block")
	}
	tlvs, err = parseTLVs(body)
	return src, dst, tlvs, 16 + length, err
}

// parseTLVs splits a block of TLVs, which must fill it exactly.
func parseTLVs(body []byte) ([]tlv, error) {
	var tlvs []tlv
	for len(body) > 0 {
		if len(body) < 3 {
			return nil, errors.New("truncated TLV")
		}
		l := int(binary.BigEndian.Uint16(body[1:3]))
		if len(body) < 3+l {
			return nil, errors.New("TLV past the header")
		}
		tlvs = append(tlvs, tlv{body[0], string(body[3 : 3+l])})
		body = body[3+l:]
	}
	return tlvs, nil
}

// TestProxyHeaderLayout checks the bytes of an IPv4 header against the
// specification's layout, by hand.
func TestProxyHeaderLayout(t *testing.T) {
	h := proxyHeader(netip.MustParseAddrPort("192.0.2.1:50000"), netip.MustParseAddrPort("198.51.100.7:8443"), []tlv{{PP2TypeFingerprint, "SHA256:x"}})
	want := append(proxyV2Sig[:], 0x21, 0x11, 0, 12+3+8,
		192, 0, 2, 1, 198, 51, 100, 7, 0xC3, 0x50, 0x20, 0xFB,
		0xE0, 0, 8, 'S', 'H', 'A', '2', '5', '6', ':', 'x')
	if !bytes.Equal(h, want) {
		t.Fatalf("header\n% x\nwant\n% x", h, want)
	}
}

// TestProxyHeaderFamilies: two IPv4 ends are TCP4; an IPv6 end makes
// both IPv6 (the IPv4 one mapped); an invalid address makes LOCAL.
func TestProxyHeaderFamilies(t *testing.T) {
	v4, v6 := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("[2001:db8::1]:2")
	for _, c := range []struct {
		src, dst netip.AddrPort
		fam      byte
	}{
		{v4, v4, proxyV2TCP4}, {v6, v6, proxyV2TCP6}, {v4, v6, proxyV2TCP6}, {netip.MustParseAddrPort("[::ffff:10.0.0.1]:3"), v4, proxyV2TCP4},
	} {
		h := proxyHeader(c.src, c.dst, nil)
		if h[13] != c.fam {
			t.Errorf("%v → %v: family %#x, want %#x", c.src, c.dst, h[13], c.fam)
		}
		src, dst, _, n, err := parseProxyV2(h)
		if err != nil || n != len(h) || src.Port() != c.src.Port() || dst.Port() != c.dst.Port() ||
			src.Addr().Unmap() != c.src.Addr().Unmap() || dst.Addr().Unmap() != c.dst.Addr().Unmap() {
			t.Errorf("%v → %v: parsed %v → %v (%d bytes of %d), %v", c.src, c.dst, src, dst, n, len(h), err)
		}
	}
	if h := proxyHeader(netip.AddrPort{}, v4, nil); h[12] != proxyV2Local || h[13] != 0 {
		t.Errorf("no source address: % x, want LOCAL", h[12:14])
	}
}

// FuzzProxyHeader: every header the encoder makes parses back, strictly,
// to what it was given; and the parser survives any input.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, uint16(50000), []byte{127, 0, 0, 1}, uint16(8443), []byte("SHA256:abc"), []byte("alice"))
	f.Add(bytes.Repeat([]byte{0x20}, 16), uint16(1), []byte{10, 0, 0, 1}, uint16(2), []byte{}, bytes.Repeat([]byte("é"), 300))
	f.Fuzz(func(t *testing.T, srcIP []byte, srcPort uint16, dstIP []byte, dstPort uint16, fp, name []byte) {
		_, _, _, _, _ = parseProxyV2(append(append([]byte{}, srcIP...), fp...)) // garbage in: no panic
		if len(fp) > maxNameTLV || len(name) > maxNameTLV {
			return // longer values are never sent (peerTLVs)
		}
		s, ok1 := netip.AddrFromSlice(srcIP)
		d, ok2 := netip.AddrFromSlice(dstIP)
		if !ok1 || !ok2 {
			return
		}
		src, dst := netip.AddrPortFrom(s, srcPort), netip.AddrPortFrom(d, dstPort)
		in := []tlv{{PP2TypeFingerprint, string(fp)}, {PP2TypeName, string(name)}}
		h := proxyHeader(src, dst, in)
		gs, gd, out, n, err := parseProxyV2(h)
		if err != nil || n != len(h) {
			t.Fatalf("%v → %v: %v (%d of %d bytes)", src, dst, err, n, len(h))
		}
		if gs.Addr().Unmap() != s.Unmap() || gd.Addr().Unmap() != d.Unmap() || gs.Port() != srcPort || gd.Port() != dstPort {
			t.Fatalf("%v → %v parsed as %v → %v", src, dst, gs, gd)
		}
		if !slices.EqualFunc(in, out, func(a, b tlv) bool { return a == b }) {
			t.Fatalf("TLVs %v parsed as %v", in, out)
		}
	})
}

// The server name is the client's to choose (SNI: up to 64 KiB of any
// bytes in a ClientHello): only one that can be a host's name is sent —
// one too long would wrap the header's 16-bit length, so that the target
// read the rest of the TLVs as the client's bytes; one with a CR, LF, NUL
// or a byte that is not ASCII would reach a target that copies the
// authority into a header or a log line (TestProxyProtocolAuthorityControlBytes).
func TestProxyHeaderServerName(t *testing.T) {
	for _, tc := range []struct {
		name string
		sent bool
	}{
		{ofLength(253), true},
		{ofLength(254), false},
		{ofLength(70000), false},
		{"app.example", true},
		{"App-1.Example", true},
		{"_svc.internal_host.example", true},
		{"192.0.2.1", true},
		{"xn--bcher-kva.example", true},
		{"app.example\r\nX-Keytool-Name: admin", false},
		{"app.example\x00", false},
		{"app\nexample", false},
		{"bücher.example", false},
		{"app.example\xff", false},
		{"app example", false},
		{"app..example", false},
		{"app.example:8443", false},
		{`"app.example"`, false},
	} {
		cs := &tls.ConnectionState{ServerName: tc.name, Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
		h := proxyHeader(netip.MustParseAddrPort("192.0.2.1:50000"), netip.MustParseAddrPort("198.51.100.7:8443"),
			peerTLVs(cs, &tlsbridge.Peer{}, "SHA256:x"))
		_, _, tlvs, read, err := parseProxyV2(h)
		if err != nil || read != len(h) {
			t.Fatalf("server name of %d bytes: %v (%d of %d bytes)", len(tc.name), err, read, len(h))
		}
		i := slices.IndexFunc(tlvs, func(v tlv) bool { return v.typ == PP2TypeAuthority })
		if sent := i >= 0; sent != tc.sent {
			t.Errorf("server name %.40q (%d bytes): sent %t, want %t", tc.name, len(tc.name), sent, tc.sent)
		} else if sent && tlvs[i].value != tc.name {
			t.Errorf("server name %q sent as %q", tc.name, tlvs[i].value)
		}
	}
}

// ofLength is a host name of n bytes: one-letter labels.
func ofLength(n int) string {
	dots := strings.Repeat("a.", (n-1)/2)
	return dots + strings.Repeat("a", n-len(dots))
}
