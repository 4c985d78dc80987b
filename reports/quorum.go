package reports

import (
	"slices"
	"strings"
)

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
// vantages' results for one name: at most AllowedFailures(n) may fail, and
// the passing ones must span at least two distinct RIRs (an unknown RIR
// never counts toward that). Cluster vantages do not count. With fewer than
// two external vantages there is no quorum to report and it returns nil.
func ComputeQuorum(results []VantageResult) *Quorum {
	n, passed := 0, 0
	var rirs []string
	for _, p := range results {
		if !p.External() {
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
