package reports

import (
	"cmp"
	"slices"
	"time"
)

// Verdict is the one-word outcome of a report.
type Verdict string

const (
	VerdictPass Verdict = "pass" // no Warning, Error or Fatal finding
	VerdictWarn Verdict = "warn" // warnings only
	VerdictFail Verdict = "fail" // at least one Error or Fatal finding
)

// CheckStatus is how one named check ended.
type CheckStatus string

const (
	CheckOK      CheckStatus = "ok"
	CheckWarn    CheckStatus = "warn"
	CheckFail    CheckStatus = "fail"
	CheckSkipped CheckStatus = "skipped"
)

// Check records one named check that ran (dns.delegation, dns.caa, ...), so a
// reader can see what was looked at and not only what was wrong.
type Check struct {
	Name    string `json:"name"`
	Target  string `json:"target,omitempty"` // the DNS name checked
	Vantage string `json:"vantage,omitempty"`
	// Server is the server or address asked, when the check is about one
	// (a propagation watch has a check per authoritative server address).
	Server   string        `json:"server,omitempty"`
	Status   CheckStatus   `json:"status"`
	Duration time.Duration `json:"-"`
	Note     string        `json:"note,omitempty"`
}

// VantageResult is a vantage and whether it passed (Judge) every name of
// the report.
type VantageResult struct {
	Vantage
	OK bool `json:"ok"`
}

// Quorum is the MPIC verdict over the external vantages (CA/B BR 3.2.2.9).
type Quorum struct {
	Perspectives    int  `json:"perspectives"`
	Passed          int  `json:"passed"`
	AllowedFailures int  `json:"allowed_failures"`
	OK              bool `json:"ok"`
	// PassedRIRs are the distinct RIRs of the passing perspectives, sorted;
	// fewer than two fail the quorum even when the count passes.
	PassedRIRs []string `json:"passed_rirs,omitempty"`
	// Name is whose quorum this is when the report covers several names:
	// the CA judges each name on its own, and the report shows the one
	// closest to failing. Empty for a report of one name.
	Name string `json:"name,omitempty"`
}

// Report is what one diagnose run (or one daemon snapshot) found.
type Report struct {
	Version   int       `json:"version"`
	Names     []string  `json:"names"`
	Challenge Challenge `json:"challenge"`
	// Challenges gives each name its own challenge when the names differ
	// (a daemon's report over all its targets); Challenge is then the
	// first name's.
	Challenges map[string]Challenge `json:"challenges,omitempty"`
	Verdict    Verdict              `json:"verdict"`
	Findings   []Finding            `json:"findings"`
	Vantages   []VantageResult      `json:"vantages"`
	Quorum     *Quorum              `json:"quorum,omitempty"`
	Checks     []Check              `json:"checks"`
	// Renewals are the certificate served for each name and its renewal
	// window, for the names a tls probe has seen.
	Renewals map[string]*RenewalStatus `json:"renewals,omitempty"`
	// Timelines are the cert-manager Certificates the report is about
	// (diagnose --kube, the daemon's watched Certificates), each with its
	// issuance attempts.
	Timelines []Timeline    `json:"timelines,omitempty"`
	Duration  time.Duration `json:"-"`
}

// ChallengeOf is the challenge the report validates name with.
func (r *Report) ChallengeOf(name string) Challenge {
	if c, ok := r.Challenges[name]; ok {
		return c
	}
	return r.Challenge
}

// SchemaVersion is the "version" field of the JSON report.
const SchemaVersion = 1

// Finalize orders findings (by name as given, then worst first, then code)
// and computes the verdict. Call it once every finding is in.
func (r *Report) Finalize() {
	r.Version = SchemaVersion
	order := make(map[string]int, len(r.Names))
	for i, n := range r.Names {
		order[n] = i
	}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		ai, aok := order[a.Name]
		bi, bok := order[b.Name]
		if !aok {
			ai = len(order)
		}
		if !bok {
			bi = len(order)
		}
		return cmp.Or(cmp.Compare(ai, bi), cmp.Compare(a.Name, b.Name), cmp.Compare(b.Severity, a.Severity),
			cmp.Compare(a.Code, b.Code), cmp.Compare(a.Vantage, b.Vantage), cmp.Compare(a.Detail, b.Detail))
	})
	r.Verdict = VerdictPass
	for _, f := range r.Findings {
		switch {
		case f.Severity >= Error:
			r.Verdict = VerdictFail
		case f.Severity == Warning && r.Verdict == VerdictPass:
			r.Verdict = VerdictWarn
		}
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if r.Checks == nil {
		r.Checks = []Check{}
	}
	if r.Vantages == nil {
		r.Vantages = []VantageResult{}
	}
}

// ExitCode is diagnose's exit status for the report: 1 with any Error or
// Fatal finding, else 0. (2, usage errors, never reaches a report.)
func (r *Report) ExitCode() int {
	if r.Verdict == VerdictFail {
		return 1
	}
	return 0
}
