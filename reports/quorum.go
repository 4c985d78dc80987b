package reports

import (
	"slices"
	"strings"
)

// Perspective is one vantage point's outcome, as the MPIC quorum sees it.
type Perspective struct {
	Name string
	// RIR is the Regional Internet Registry the vantage sits in (ARIN, RIPE,
	// APNIC, LACNIC, AFRINIC); compared case-insensitively. Empty means
	// unknown, and an unknown RIR never counts toward RIR diversity.
	RIR string
	// External marks a remote perspective. Only these count: cluster vantages
	// show what cert-manager's self-check sees, not what the CA sees.
	External bool
	// OK is true when every check from this vantage passed.
	OK bool
}

// requiredRIRs is how many distinct RIRs the passing perspectives must span
// (CA/B BR 3.2.2.9; Boulder's requiredRIRs).
const requiredRIRs = 2

// AllowedFailures is how many of n remote perspectives may fail (CA/B BR
// 3.2.2.9 table, as Boulder's maxAllowedFailures): none below 2, one for 2–5,
// two for 6 or more.
func AllowedFailures(n int) int {
	switch {
	case n < 2:
		return 0
	case n < 6:
		return 1
	default:
		return 2
	}
}

// ComputeQuorum applies the CA/B Forum BR 3.2.2.9 quorum to the external
// perspectives: at most AllowedFailures(n) may fail, and the passing ones must
// span at least two distinct RIRs. With fewer than two external perspectives
// there is no quorum to report and it returns nil. Each element is one
// perspective; the caller passes one per vantage.
func ComputeQuorum(perspectives []Perspective) *Quorum {
	n, passed := 0, 0
	var rirs []string
	for _, p := range perspectives {
		if !p.External {
			continue
		}
		n++
		if !p.OK {
			continue
		}
		passed++
		if rir := strings.ToUpper(strings.TrimSpace(p.RIR)); rir != "" && !slices.Contains(rirs, rir) {
			rirs = append(rirs, rir)
		}
	}
	if n < 2 {
		return nil
	}
	slices.Sort(rirs)
	allowed := AllowedFailures(n)
	return &Quorum{
		Perspectives:    n,
		Passed:          passed,
		AllowedFailures: allowed,
		OK:              n-passed <= allowed && len(rirs) >= requiredRIRs,
		PassedRIRs:      rirs,
	}
}

// Margin is how many more perspectives could fail before the failure count
// alone breaks the quorum; negative when it is already broken by count. (The
// RIR rule can break a quorum whose margin is not negative.)
func (q *Quorum) Margin() int {
	return q.AllowedFailures - (q.Perspectives - q.Passed)
}
