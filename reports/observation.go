package reports

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The data model every layer shares: what was observed (Observation), from
// where (Vantage), by which kind of probe (Kind), about which challenge
// (Challenge). It lives here, at the bottom floor, because the report,
// the quorum and correlation read it; probes produces it and the daemon
// stores it. There is no second shape of it anywhere: the API and the agent
// protocol carry it as JSON (MarshalJSON).

// Challenge is an ACME challenge type.
type Challenge string

// The challenges Let's Encrypt offers.
const (
	HTTP01    Challenge = "http-01"
	DNS01     Challenge = "dns-01"
	TLSALPN01 Challenge = "tls-alpn-01"
)

// Challenges lists them.
var Challenges = []Challenge{HTTP01, DNS01, TLSALPN01}

// ParseChallenge reads a challenge type.
func ParseChallenge(s string) (Challenge, error) {
	for _, c := range Challenges {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("%q is not http-01, dns-01 or tls-alpn-01", s)
}

// DefaultChallenge is the challenge a name gets when nobody chose: http-01,
// dns-01 for a wildcard (the only one the CA offers for it).
func DefaultChallenge(name string) Challenge {
	if strings.HasPrefix(name, "*.") {
		return DNS01
	}
	return HTTP01
}

// Kind names a kind of probe (dns, http-01, tls-alpn-01, acme, ...). The
// probes package registers the kinds; a report needs only their names.
type Kind string

// VantageKind says what a vantage stands for.
type VantageKind string

const (
	// External: a remote perspective, as the CA's are; it counts toward
	// the MPIC quorum.
	External VantageKind = "external"
	// Cluster: inside the cluster, what cert-manager's self-check sees; it
	// never counts toward the quorum.
	Cluster VantageKind = "cluster"
)

// ParseVantageKind reads external or cluster.
func ParseVantageKind(s string) (VantageKind, error) {
	switch VantageKind(s) {
	case External, Cluster:
		return VantageKind(s), nil
	}
	return "", fmt.Errorf("%q is not external or cluster", s)
}

// RIRs are the Regional Internet Registries a vantage can sit in; the
// passing perspectives of a quorum must span two of them.
var RIRs = []string{"ARIN", "RIPE", "APNIC", "LACNIC", "AFRINIC"}

// Vantage identifies a place observations are made from: a local source
// address, an agent elsewhere, a pod of the DaemonSet. How to probe from
// it (addresses, resolvers, clients) is the probes package's business.
type Vantage struct {
	Name   string      `json:"name"`
	Kind   VantageKind `json:"kind,omitempty"`
	Region string      `json:"region,omitempty"`
	RIR    string      `json:"rir,omitempty"` // ARIN, RIPE, APNIC, LACNIC, AFRINIC; "" unknown
}

// External reports whether the vantage counts toward the MPIC quorum.
func (v Vantage) External() bool { return v.Kind != Cluster }

// Observation is one probe run's outcome: what one kind of probe saw of
// one name from one vantage. An observation with a zero Vantage was not
// made from a vantage of ours: the CA's own verdict (a canary order), or a
// check that asks every authoritative server directly for all vantages
// (propagation); it never counts as a perspective.
type Observation struct {
	Name      string
	Challenge Challenge
	Vantage   Vantage
	Kind      Kind
	Start     time.Time
	Duration  time.Duration
	// OK: the run judged the name and found no Error or Fatal. A run that
	// could not judge (no address to connect to, an agent that did not
	// answer, a timeout) is not OK even without a finding.
	OK       bool
	Findings []Finding
	Checks   []Check
	Trace    Trace
	// TLS is what a tls run saw: the certificates served and the CA's
	// window for the newest (nil for other kinds).
	TLS *TLSFacts
	// Renewal is the renewal rule's reading of the name, on the
	// observation derived from the others (KindRenewal in probes).
	Renewal *RenewalStatus
}

// Perspective reports whether the observation was made from one of our
// vantages.
func (o Observation) Perspective() bool { return o.Vantage.Name != "" }

// Finish sets OK from the findings: no Error or Fatal.
func (o Observation) Finish() Observation {
	o.OK = true
	for _, f := range o.Findings {
		if f.Severity >= Error {
			o.OK = false
		}
	}
	return o
}

// Trace is what a run recorded beyond its findings, for a person to follow:
// a few lines (an HTTP-01 validation's hops, the agent that answered), and
// for an order at the CA the CA's problem document verbatim. It is bounded
// by construction (Add), so a hostile answer cannot grow it.
type Trace struct {
	Problem *Problem `json:"problem,omitempty"`
	Lines   []string `json:"lines,omitempty"`
}

// Bounds of a Trace.
const (
	MaxTraceLines    = 16
	MaxTraceLineSize = 240
)

// Add appends one line, cut to MaxTraceLineSize; past MaxTraceLines it is
// dropped.
func (t *Trace) Add(format string, args ...any) {
	if len(t.Lines) >= MaxTraceLines {
		return
	}
	line := fmt.Sprintf(format, args...)
	if len(line) > MaxTraceLineSize {
		line = strings.ToValidUTF8(line[:MaxTraceLineSize], "") + "…"
	}
	t.Lines = append(t.Lines, line)
}

// IsZero reports whether nothing was traced.
func (t Trace) IsZero() bool { return t.Problem == nil && len(t.Lines) == 0 }

// Judge is how one vantage saw one name over its observations (the latest
// of each probe kind): fail when a run failed, warn when one has a warning,
// ok otherwise; skipped when there is none. The report, the metrics and the
// page all decide "does this vantage pass" here, and nowhere else.
func Judge(obs []Observation) CheckStatus {
	if len(obs) == 0 {
		return CheckSkipped
	}
	st := CheckOK
	for _, o := range obs {
		if !o.OK {
			return CheckFail
		}
		for _, f := range o.Findings {
			if f.Severity == Warning {
				st = CheckWarn
			}
		}
	}
	return st
}

// observationJSON is an Observation on the wire (the daemon's
// /api/v1/observations and the agent protocol): the vantage by name as the
// API always had it, its kind, region and RIR beside it.
type observationJSON struct {
	Name        string         `json:"name"`
	Challenge   Challenge      `json:"challenge"`
	Vantage     string         `json:"vantage"`
	VantageKind VantageKind    `json:"vantage_kind,omitempty"`
	Region      string         `json:"region,omitempty"`
	RIR         string         `json:"rir,omitempty"`
	Kind        Kind           `json:"kind"`
	Start       time.Time      `json:"start"`
	DurationMS  int64          `json:"duration_ms"`
	OK          bool           `json:"ok"`
	Findings    []Finding      `json:"findings"`
	Checks      []Check        `json:"checks"`
	Trace       *Trace         `json:"trace,omitempty"`
	TLS         *TLSFacts      `json:"tls,omitempty"`
	Renewal     *RenewalStatus `json:"renewal,omitempty"`
}

// MarshalJSON writes the API's form: durations in milliseconds, lists as
// arrays (never null).
func (o Observation) MarshalJSON() ([]byte, error) {
	j := observationJSON{Name: o.Name, Challenge: o.Challenge, Vantage: o.Vantage.Name, VantageKind: o.Vantage.Kind,
		Region: o.Vantage.Region, RIR: o.Vantage.RIR, Kind: o.Kind, Start: o.Start.UTC(), DurationMS: toMillis(o.Duration),
		OK: o.OK, Findings: o.Findings, Checks: o.Checks, TLS: o.TLS, Renewal: o.Renewal}
	if j.Findings == nil {
		j.Findings = []Finding{}
	}
	if j.Checks == nil {
		j.Checks = []Check{}
	}
	if !o.Trace.IsZero() {
		j.Trace = &o.Trace
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (o *Observation) UnmarshalJSON(b []byte) error {
	var j observationJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*o = Observation{Name: j.Name, Challenge: j.Challenge, Vantage: Vantage{Name: j.Vantage, Kind: j.VantageKind, Region: j.Region, RIR: j.RIR},
		Kind: j.Kind, Start: j.Start, Duration: fromMillis(j.DurationMS), OK: j.OK, Findings: j.Findings, Checks: j.Checks,
		TLS: j.TLS, Renewal: j.Renewal}
	if j.Trace != nil {
		o.Trace = *j.Trace
	}
	return nil
}
