// Package probes runs acmediag's checks as probes: one run of one probe kind
// for one target from one vantage gives a reports.Observation. `diagnose`
// runs every probe once (RunOnce); the daemon will schedule the same probes. The DNS
// probe wraps dnscheck, the challenge probes wrap http01; findings are
// reports.Finding, and formatting them is the reports package's business.
package probes

import (
	"net/netip"

	"github.com/acmediag/acmediag/reports"
)

// Vantage is a place probes run from: who it is (reports.Vantage), and how
// to probe from there: every packet leaves from SourceAddr and names are
// resolved by its own resolvers.
type Vantage struct {
	reports.Vantage
	SourceAddr netip.Addr
	Resolvers  []netip.AddrPort // empty: the run's default resolvers
	// Remote, for an agent vantage, runs its probes where the agent is.
	Remote Remote
}

// Target is one name to validate and how. On the wire (an agent request)
// it carries a DNS name and what to validate, never an address, a port or
// a URL.
type Target struct {
	Name      string            `json:"name" yaml:"name"`
	Challenge reports.Challenge `json:"challenge,omitempty" yaml:"challenge"`   // "" → reports.DefaultChallenge(Name)
	Token     string            `json:"token,omitempty" yaml:"token"`           // http-01: the token to fetch ("" → a random one, reachability only)
	KeyAuth   string            `json:"key_auth,omitempty" yaml:"key_auth"`     // http-01/tls-alpn-01: the key authorization
	ExpectTXT string            `json:"expect_txt,omitempty" yaml:"expect_txt"` // dns-01: the value that must be visible everywhere
	// TLS turns the tls kind on or off for this name; nil follows
	// tls.enabled.
	TLS *bool `json:"tls,omitempty" yaml:"tls"`
}
