// Package probes runs acmediag's checks as probes: one run of one probe kind
// for one target from one vantage gives an Observation. `diagnose` runs every
// probe once (RunOnce); the daemon will schedule the same probes. The DNS
// probe wraps dnscheck, the challenge probes wrap http01; findings are
// reports.Finding, and formatting them is the reports package's business.
package probes

import (
	"context"
	"net/netip"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// Vantage kinds: an external vantage counts as a remote perspective in the
// MPIC quorum; a cluster vantage shows what cert-manager's self-check sees.
const (
	KindExternal = "external"
	KindCluster  = "cluster"
)

// Vantage is a place probes run from: every packet leaves from SourceAddr
// and names are resolved by its own resolvers.
type Vantage struct {
	Name       string
	Kind       string // KindExternal or KindCluster
	Region     string
	RIR        string // ARIN, RIPE, APNIC, LACNIC, AFRINIC
	SourceAddr netip.Addr
	Resolvers  []netip.AddrPort // empty: the run's default resolvers
}

// External reports whether the vantage counts toward the MPIC quorum.
func (v Vantage) External() bool { return v.Kind != KindCluster }

// Target is one name to validate and how.
type Target struct {
	Name      string
	Challenge string // http-01, dns-01, tls-alpn-01
	Token     string // http-01: the token to fetch ("" → a random one, reachability only)
	KeyAuth   string // http-01/tls-alpn-01: the key authorization
	ExpectTXT string // dns-01: the value that must be visible everywhere
}

// Observation is one probe run's outcome.
type Observation struct {
	Target   Target
	Vantage  Vantage
	Kind     string
	Start    time.Time
	Duration time.Duration
	OK       bool // no Error or Fatal finding
	Findings []reports.Finding
	Checks   []reports.Check
	Trace    any // the probe kind's own record (dnscheck.Result, http01.Result)
}

// Outcome is what the report needs of the observation.
func (o Observation) Outcome() reports.Outcome {
	return reports.Outcome{Vantage: o.Vantage.Name, Name: o.Target.Name, Findings: o.Findings, Checks: o.Checks, Failed: !o.OK}
}

// Probe is one kind of check.
type Probe interface {
	Kind() string
	Run(ctx context.Context, t Target, v Vantage) Observation
}

// Applier is implemented by probes that check only some targets (a
// challenge probe: targets of its challenge). Schedulers skip the rest.
type Applier interface {
	Applies(t Target) bool
}

func finish(o Observation) Observation {
	o.OK = true
	for _, f := range o.Findings {
		if f.Severity >= reports.Error {
			o.OK = false
		}
	}
	return o
}
