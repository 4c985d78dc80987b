package dnscheck

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzValidateAnswer feeds arbitrary wire bytes through dns.Msg.Unpack into
// ValidateAnswer against a real signed zone's keys, seeded with valid signed
// responses so the fuzzer reaches the signature and denial code. It checks
// that nothing panics and that the verdict is self-consistent.
func FuzzValidateAnswer(f *testing.F) {
	fx := newSecFixture(f)
	keys := fx.keys(f)
	for _, tc := range answerCases(f, fx) {
		m := tc.msg()
		if m == nil {
			continue
		}
		if wire, err := m.Pack(); err == nil {
			f.Add(wire)
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		msg := new(dns.Msg)
		if err := msg.Unpack(wire); err != nil {
			return
		}
		qname, qtype := "www.example.com.", dns.TypeA
		if len(msg.Question) > 0 {
			qname, qtype = msg.Question[0].Name, msg.Question[0].Qtype
		}
		v := ValidateAnswer(keys, "example.com.", qname, qtype, msg, secNow)
		if (v.Security == SecurityBogus) != (v.Reason != "" && v.Security != SecurityInsecure) {
			t.Errorf("verdict %v with reason %q", v.Security, v.Reason)
		}
		if v.Security == SecuritySecure && !hasRRSIG(msg) {
			t.Errorf("secure without any RRSIG: %s", v.Detail)
		}
		if v.Security == SecuritySecure && v.Expires.IsZero() {
			t.Errorf("secure without an expiry: %s", v.Detail)
		}
	})
}

func hasRRSIG(m *dns.Msg) bool {
	for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Ns...) {
		if _, ok := rr.(*dns.RRSIG); ok {
			return true
		}
	}
	return false
}
