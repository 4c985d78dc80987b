package canary

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// FuzzProblem feeds ACME problem documents (RFC 8555 §6.7, RFC 7807) and
// Retry-After values, as a CA or anything posing as one sends them, to
// the classification: never a panic, a failure always ends in
// acme.order_failed, every code is the catalogue's, and a Retry-After
// never says to wait a negative time.
func FuzzProblem(f *testing.F) {
	for _, seed := range []struct{ doc, retry string }{
		{`{"type":"urn:ietf:params:acme:error:unauthorized","detail":"Incorrect TXT record \"x\" found at _acme-challenge.a.com"}`, ""},
		{`{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-01-02 15:04:05 UTC"}`, "3600"},
		{`{"type":"urn:ietf:params:acme:error:connection","detail":"1.2.3.4: Fetching http://a.com/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)"}`, "Wed, 21 Oct 2015 07:28:00 GMT"},
		{`{"type":"urn:ietf:params:acme:error:dns","detail":"DNS problem: SERVFAIL looking up CAA for a.com - the domain's nameservers may be malfunctioning"}`, "-1"},
		{`{"type":"urn:ietf:params:acme:error:caa","detail":"CAA record for a.com prevents issuance"}`, "99999999999999999999"},
		{`{"type":"","detail":""}`, ""},
		{`{"type":7}`, "x"},
	} {
		f.Add([]byte(seed.doc), seed.retry)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, doc []byte, retry string) {
		var p reports.Problem
		if err := json.Unmarshal(doc, &p); err != nil {
			return
		}
		verdict, fs := classify("a.example.com", p)
		switch verdict {
		case Reached:
			if len(fs) != 0 {
				t.Errorf("reached with findings %v", fs)
			}
		case Failed:
			if len(fs) == 0 || fs[len(fs)-1].Code != reports.CodeACMEOrderFailed {
				t.Errorf("failed without acme.order_failed last: %v", fs)
			}
		}
		for _, f := range fs {
			if e := reports.Lookup(f.Code); strings.HasPrefix(e.Summary, "unknown finding code") {
				t.Errorf("code %q is not in the catalogue", f.Code)
			}
		}
		if d, ok := parseRetryAfter(retry, now); d < 0 || (!ok && d != 0) {
			t.Errorf("Retry-After %q: %s, %v", retry, d, ok)
		}
	})
}
