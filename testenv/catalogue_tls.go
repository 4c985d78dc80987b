package testenv

import (
	"time"

	"github.com/acmediag/acmediag/reports"
)

// Pebble order groups of the TLS scenarios: one order for the names that
// serve an ordinary Pebble certificate, and one of its own for the name
// whose ARI window tests move (so that it moves nobody else's).
const (
	pebbleMain = "main"
	pebbleARI  = "ari"
)

// tlsScenarios are the served-certificate scenarios: every name answers
// HTTP-01 on port 80 (so Pebble can issue for it) and serves, on the HTTPS
// port, what its scenario stages. Their expectations are for the tls probe
// kind (--tls); the HTTP-01 side is healthy.
func (c *cat) tlsScenarios() {
	site := func(cs certSpec) siteSpec {
		return siteSpec{http: webBehaviour{kind: webSolver}, tls: tlsCert, cert: cs}
	}
	hostile := func(k tlsKind) siteSpec { return siteSpec{http: webBehaviour{kind: webSolver}, tls: k} }
	day := 24 * time.Hour
	tlsExp := func(code reports.Code, sev reports.Severity, detail string) []Expectation {
		return []Expectation{exp(code, sev, detail)}
	}
	// Past the renewal window (two thirds of the lifetime, Pebble's ARI
	// absent for these fixtures) with the old certificate still served.
	overdue := exp(reports.CodeRenewalOverdue, reports.Error, "has not been replaced")
	add := func(s Scenario, first siteSpec, more ...siteSpec) {
		s.Args, s.TLS = reachArgs, true
		c.addWeb(webCase{s: s, site: first, more: more})
	}

	add(Scenario{Name: "tls-ok", Healthy: true,
		Description: "a complete chain for the name from a trusted CA (Pebble's when it runs), 90 days, issued an hour ago"},
		site(certSpec{pebble: pebbleMain}))
	add(Scenario{Name: "tls-ari", Healthy: true,
		Description: "like tls-ok, with a Pebble certificate of its own whose ARI window tests move"},
		site(certSpec{pebble: pebbleARI}))
	add(Scenario{Name: "tls-stale-backend",
		Description: "two addresses: one serves the renewed certificate, the other still the one from 61 days before",
		Expect:      tlsExp(reports.CodeTLSStaleBackend, reports.Error, "still serve(s)")},
		site(certSpec{pebble: pebbleMain}), site(certSpec{age: 61 * day}))
	add(Scenario{Name: "tls-wrong-name",
		Description: "the certificate served is for other names",
		Expect:      tlsExp(reports.CodeTLSNameMismatch, reports.Error, "does not cover")},
		site(certSpec{otherName: true, pebble: pebbleMain}))
	add(Scenario{Name: "tls-no-intermediate",
		Description: "the leaf is served without its intermediate",
		Expect:      tlsExp(reports.CodeTLSChainIncomplete, reports.Warning, "without the intermediate")},
		site(certSpec{kind: certLeafOnly, pebble: pebbleMain}))
	add(Scenario{Name: "tls-self-signed",
		Description: "a self-signed certificate for the name",
		Expect:      tlsExp(reports.CodeTLSUntrusted, reports.Warning, "self-signed")},
		site(certSpec{kind: certSelfSigned}))
	add(Scenario{Name: "tls-chain-loop",
		Description: "the leaf, then two CAs that issue each other (an issuer loop), neither trusted",
		Expect:      tlsExp(reports.CodeTLSUntrusted, reports.Warning, "loop")},
		site(certSpec{kind: certLoop}))
	add(Scenario{Name: "tls-expiring",
		Description: "20 days of 90 left: inside the last third",
		Expect:      append(tlsExp(reports.CodeTLSExpiring, reports.Warning, "expires in 20 days"), overdue)},
		site(certSpec{age: 70 * day}))
	add(Scenario{Name: "tls-expiring-soon",
		Description: "5 days of 90 left: inside the last tenth",
		Expect:      append(tlsExp(reports.CodeTLSExpiring, reports.Error, "expires in 5.0 days"), overdue)},
		site(certSpec{age: 85 * day}))
	add(Scenario{Name: "tls-expired",
		Description: "expired ten days ago",
		Expect:      append(tlsExp(reports.CodeTLSExpiring, reports.Fatal, "expired 10 days ago"), overdue)},
		site(certSpec{age: 100 * day}))
	add(Scenario{Name: "tls-short-lived",
		Description: "a 6-day certificate with 12 hours left: inside the last tenth",
		Expect:      append(tlsExp(reports.CodeTLSExpiring, reports.Error, "expires in 12 h"), overdue)},
		site(certSpec{age: 132 * time.Hour, lifetime: 6 * day}))
	add(Scenario{Name: "tls-hang",
		Description: "port 443 accepts and never answers the ClientHello",
		Expect:      tlsExp(reports.CodeTLSHandshakeFailed, reports.Error, "did not finish")},
		hostile(tlsHang))
	add(Scenario{Name: "tls-garbage",
		Description: "port 443 answers the ClientHello with an SSH banner",
		Expect:      tlsExp(reports.CodeTLSHandshakeFailed, reports.Error, "not TLS")},
		hostile(tlsGarbage))
	add(Scenario{Name: "tls-huge-chain",
		Description: "a certificate chain of more than 1 MiB",
		Expect:      tlsExp(reports.CodeTLSHandshakeFailed, reports.Error, "too large")},
		site(certSpec{kind: certHuge}))
	add(Scenario{Name: "tls-refused",
		Description: "nothing listens on port 443",
		Expect:      tlsExp(reports.CodeTLSHandshakeFailed, reports.Error, "connection refused")},
		siteSpec{http: webBehaviour{kind: webSolver}})
}
