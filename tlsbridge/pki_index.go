package tlsbridge

import (
	"cmp"
	"crypto/x509"
	"slices"
)

// caIndex is what PKI mode knows of its CAs between two loads, built once
// per load so that a handshake looks answers up instead of checking
// signatures: the bundled CAs do not change until the files do, and
// neither do the signatures between them nor those of their CRLs
// (docs/design.md, "Chains and their CRLs"). A lookup of a certificate no
// file holds — one only the peer sent — misses, and is computed as it
// would be without the index; so does every lookup of a nil issuers or
// crls map, which gives the same decisions at the old cost (the
// benchmark's baseline).
type caIndex struct {
	// selfSigned says, by a CA's DER, whether it is a self-signed CA.
	selfSigned map[string]bool
	// issuers lists, by the DER of a CA that is not self-signed, the
	// CAs of every set (once each, in load order) whose subject is its
	// issuer and whose signature on it verifies.
	issuers map[string][]*x509.Certificate
	// crls lists, by a set and the DER of a CA of any set whose subject
	// and key that set holds, the set's CRLs that CA signed.
	crls map[setCA][]*x509.RevocationList
	// crlsByKey lists, by a set and a CA's subjectKey, the set's CRLs
	// signed by that key: the only ones a certificate the peer sent
	// with that subject and key can have signed.
	crlsByKey map[setCA][]*x509.RevocationList
	// holders lists, by a CA's subjectKey, the sets that hold it, in
	// load order.
	holders map[string][]*caSet
	// anchors lists, by purpose ("" the general CAs) and then by a CA's
	// subject, the sets of that tier holding a CA of that subject, in
	// load order.
	anchors map[string]map[string][]*caSet
	// order is each set's place in load order.
	order map[*caSet]int
}

// setCA keys what a set says of one CA: s is the CA's DER or subjectKey.
type setCA struct {
	set *caSet
	s   string
}

// subjectKey is a CA's subject and key, the identity holders and a
// set's CRLs are found by: two certificates of one CA (re-issued,
// cross-signed) share it.
func subjectKey(c *x509.Certificate) string {
	return string(c.RawSubject) + "\x00" + string(c.RawSubjectPublicKeyInfo)
}

// newCAIndex indexes sets, the sets of every tier in load order. Its cost
// is a signature check per CA and each CA bearing its issuer's subject,
// and per CRL and each CA of its issuer's subject and key: once per load.
func newCAIndex(sets []*caSet) *caIndex {
	ix := &caIndex{
		selfSigned: map[string]bool{},
		issuers:    map[string][]*x509.Certificate{},
		crls:       map[setCA][]*x509.RevocationList{},
		crlsByKey:  map[setCA][]*x509.RevocationList{},
		holders:    map[string][]*caSet{},
		anchors:    map[string]map[string][]*caSet{},
		order:      map[*caSet]int{},
	}
	bySubject := map[string][]*x509.Certificate{} // every CA once, by subject
	var cas []*x509.Certificate
	for i, set := range sets {
		ix.order[set] = i
		tier := ix.anchors[set.purpose]
		if tier == nil {
			tier = map[string][]*caSet{}
			ix.anchors[set.purpose] = tier
		}
		for _, ca := range set.cas {
			if k := subjectKey(ca); !slices.Contains(ix.holders[k], set) {
				ix.holders[k] = append(ix.holders[k], set)
			}
			if s := string(ca.RawSubject); !slices.Contains(tier[s], set) {
				tier[s] = append(tier[s], set)
			}
			if _, seen := ix.selfSigned[string(ca.Raw)]; !seen {
				ix.selfSigned[string(ca.Raw)] = selfSigned(ca)
				bySubject[string(ca.RawSubject)] = append(bySubject[string(ca.RawSubject)], ca)
				cas = append(cas, ca)
			}
		}
	}
	for _, ca := range cas {
		if !ix.selfSigned[string(ca.Raw)] { // completion stops at a self-signed CA
			ix.issuers[string(ca.Raw)] = signersOf(ca, bySubject[string(ca.RawIssuer)])
		}
		for _, set := range ix.holders[subjectKey(ca)] {
			if set.crls == nil {
				continue
			}
			signed := crlsSignedBy(set.crls, ca)
			ix.crls[setCA{set, string(ca.Raw)}] = signed
			byKey := setCA{set, subjectKey(ca)}
			for _, crl := range signed {
				if !slices.Contains(ix.crlsByKey[byKey], crl) {
					ix.crlsByKey[byKey] = append(ix.crlsByKey[byKey], crl)
				}
			}
		}
	}
	return ix
}

// signersOf returns those of cas that signed c, once each.
func signersOf(c *x509.Certificate, cas []*x509.Certificate) []*x509.Certificate {
	out := []*x509.Certificate{}
	for _, ca := range cas {
		if string(ca.RawSubject) == string(c.RawIssuer) && !containsCert(out, ca) && c.CheckSignatureFrom(ca) == nil {
			out = append(out, ca)
		}
	}
	return out
}

// crlsSignedBy returns those of crls that issuer signed.
func crlsSignedBy(crls []*x509.RevocationList, issuer *x509.Certificate) []*x509.RevocationList {
	out := []*x509.RevocationList{}
	for _, crl := range crls {
		if string(crl.RawIssuer) == string(issuer.RawSubject) && crl.CheckSignatureFrom(issuer) == nil {
			out = append(out, crl)
		}
	}
	return out
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	return slices.ContainsFunc(list, func(x *x509.Certificate) bool { return string(x.Raw) == string(c.Raw) })
}

// isSelfSigned reports whether c is a self-signed CA: a lookup for a CA
// of the sets (the top of a verified chain is one).
func (ix *caIndex) isSelfSigned(c *x509.Certificate) bool {
	if self, ok := ix.selfSigned[string(c.Raw)]; ok {
		return self
	}
	return selfSigned(c)
}

// issuersOf returns the CAs of sets that signed c, once each, but none
// already in ch (cross-signed CAs would loop): a lookup for a CA of the
// sets, which c is as the top of a verified or completed chain.
func (ix *caIndex) issuersOf(sets []*caSet, c *x509.Certificate, ch []*x509.Certificate) []*x509.Certificate {
	all, ok := ix.issuers[string(c.Raw)]
	if !ok {
		for _, set := range sets {
			all = append(all, signersOf(c, set.cas)...)
		}
	}
	var out []*x509.Certificate
	for _, ca := range all {
		if !containsCert(ch, ca) && !containsCert(out, ca) {
			out = append(out, ca)
		}
	}
	return out
}

// holdersOf returns the sets that hold issuer (its subject and key): the
// CRL of the set that holds a CA is the one that speaks for what it
// signed, whichever set's CA verified the chain.
func (ix *caIndex) holdersOf(issuer *x509.Certificate) []*caSet {
	return ix.holders[subjectKey(issuer)]
}

// crlsOf returns the CRLs of set that issuer signed: a lookup for a CA
// of the sets; for a certificate the peer sent, only the CRLs signed by
// its subject and key are checked, if a set holds them.
func (ix *caIndex) crlsOf(set *caSet, issuer *x509.Certificate) []*x509.RevocationList {
	if crls, ok := ix.crls[setCA{set, string(issuer.Raw)}]; ok {
		return crls
	}
	candidates := set.crls
	if ix.crlsByKey != nil {
		candidates = ix.crlsByKey[setCA{set, subjectKey(issuer)}]
	}
	return crlsSignedBy(candidates, issuer)
}

// mayAnchor returns the sets of the tier (sets, of purpose tier, in load
// order) whose CA issued a certificate of chain or is its leaf: the
// only ones whose chain building can end in them. Found by subject, a
// set is a candidate for any certificate that names one of its CAs as
// its issuer, and a peer may name them all with junk, each making its
// set run crypto/x509's Verify (up to 100 signature checks); so when
// more than one set is named, each is kept only if one of its CAs
// really signed a certificate of the chain — one signature check per
// CA and certificate naming it, where the CA's chain building would
// have started with that check too.
func (ix *caIndex) mayAnchor(tier string, sets []*caSet, chain []*x509.Certificate) []*caSet {
	bySubject := ix.anchors[tier]
	var named []*caSet
	add := func(list []*caSet) {
		for _, set := range list {
			if !slices.Contains(named, set) {
				named = append(named, set)
			}
		}
	}
	for _, c := range chain {
		add(bySubject[string(c.RawIssuer)])
	}
	for _, set := range bySubject[string(chain[0].RawSubject)] {
		if slices.ContainsFunc(set.cas, func(ca *x509.Certificate) bool { return string(ca.Raw) == string(chain[0].Raw) }) {
			add([]*caSet{set}) // Verify takes a leaf that is a root as its own chain
		}
	}
	if len(named) <= 1 {
		return named
	}
	signed := map[string]bool{} // by the CA's DER and the certificate's index: checked once
	signs := func(ca *x509.Certificate, i int) bool {
		k := string(ca.Raw) + string(rune(i))
		yes, ok := signed[k]
		if !ok {
			yes = chain[i].CheckSignatureFrom(ca) == nil
			signed[k] = yes
		}
		return yes
	}
	var out []*caSet
	for _, set := range named {
		if set.anchors(chain, signs) {
			out = append(out, set)
		}
	}
	slices.SortFunc(out, func(a, b *caSet) int { return cmp.Compare(ix.order[a], ix.order[b]) })
	return out
}

// anchors reports whether one of the set's CAs is the leaf of chain or
// signed one of its certificates, signs(ca, i) saying whether ca signed
// chain[i].
func (set *caSet) anchors(chain []*x509.Certificate, signs func(ca *x509.Certificate, i int) bool) bool {
	for _, ca := range set.cas {
		if string(ca.Raw) == string(chain[0].Raw) {
			return true
		}
		for i, c := range chain {
			if string(ca.RawSubject) == string(c.RawIssuer) && signs(ca, i) {
				return true
			}
		}
	}
	return false
}
