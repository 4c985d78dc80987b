// Package reports owns what acmediag says: findings with stable codes, the
// catalogue that gives each code its severity, summary and fix, the report
// that gathers them with a verdict, and the renderers (text, JSON, markdown).
// It does no network I/O: checks in dnscheck, http01 and probes produce
// findings, this package classifies and presents them.
package reports

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Severity orders findings: Info < Warning < Error < Fatal.
type Severity int

const (
	Info Severity = iota
	Warning
	Error
	Fatal
)

var severityNames = [...]string{"info", "warning", "error", "fatal"}

func (s Severity) String() string {
	if s < Info || s > Fatal {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads the lower-case name String returns.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return Info, fmt.Errorf("unknown severity %q (want info, warning, error or fatal)", s)
}

func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	v, err := ParseSeverity(name)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Code is a stable public finding name (FINDINGS.md): JSON output, metric
// label, alert label. Never rename or reuse one.
type Code string

// Problem is the ACME problem document Let's Encrypt would return.
type Problem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

// ACME problem types (RFC 8555 §6.7) that validation produces.
const (
	ProblemDNS                = "urn:ietf:params:acme:error:dns"
	ProblemCAA                = "urn:ietf:params:acme:error:caa"
	ProblemConnection         = "urn:ietf:params:acme:error:connection"
	ProblemUnauthorized       = "urn:ietf:params:acme:error:unauthorized"
	ProblemMalformed          = "urn:ietf:params:acme:error:malformed"
	ProblemRejectedIdentifier = "urn:ietf:params:acme:error:rejectedIdentifier"
	ProblemTLS                = "urn:ietf:params:acme:error:tls"
	ProblemRateLimited        = "urn:ietf:params:acme:error:rateLimited"
	ProblemServerInternal     = "urn:ietf:params:acme:error:serverInternal"
)

// Finding is one thing acmediag observed about a name, with what to do about it.
type Finding struct {
	Code     Code           `json:"code"`
	Severity Severity       `json:"severity"`
	Name     string         `json:"name"`
	Vantage  string         `json:"vantage,omitempty"`
	Summary  string         `json:"summary"`
	Detail   string         `json:"detail"`
	Fix      string         `json:"fix"`
	Problem  *Problem       `json:"problem,omitempty"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

// New builds a finding for code about name, taking severity, summary and fix
// from the catalogue. detail says what was observed: which server, which
// address, which answer.
func New(code Code, name, detail string) Finding {
	e := Lookup(code)
	return Finding{Code: code, Severity: e.Severity, Name: name, Summary: e.Summary, Detail: detail, Fix: e.Fix}
}

// WithProblem attaches the ACME problem LE would return.
func (f Finding) WithProblem(typ, detail string) Finding {
	f.Problem = &Problem{Type: typ, Detail: detail}
	return f
}

// WithSeverity overrides the catalogue severity, for codes whose severity
// depends on circumstance (http01.ipv6_unreachable).
func (f Finding) WithSeverity(s Severity) Finding {
	f.Severity = s
	return f
}

// With adds one machine-readable fact to the evidence.
func (f Finding) With(key string, value any) Finding {
	ev := make(map[string]any, len(f.Evidence)+1)
	for k, v := range f.Evidence {
		ev[k] = v
	}
	ev[key] = value
	f.Evidence = ev
	return f
}
