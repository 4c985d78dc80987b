package reports

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// VantageInfo is what the report needs to know of a vantage point.
type VantageInfo struct {
	Name     string
	RIR      string
	Region   string
	External bool // a remote perspective; false for an in-cluster vantage
}

// Outcome is everything one vantage found about one name.
type Outcome struct {
	Vantage  string // VantageInfo.Name
	Name     string
	Findings []Finding
	Checks   []Check
	// Failed marks a run that could not judge the name (an agent that did
	// not answer, no address to connect to): the vantage does not pass,
	// even without a finding of its own.
	Failed bool
}

// Assemble builds the report from every vantage's outcomes: a finding seen
// from every vantage is reported once without a vantage, one seen from some
// only is reported per vantage; then the MPIC quorum over the external
// vantages decides what a partial failure means (CA/B BR 3.2.2.9), and
// in-cluster vantages that alone fail point at cert-manager's self-check.
//
// The CA judges the quorum per name (each authorization on its own), so
// each name's findings follow that name's quorum; the report's Quorum is
// the name closest to failing (the first failing one), which is whether
// an order for all the names would pass.
func Assemble(names []string, challenge string, vantages []VantageInfo, outcomes []Outcome, d time.Duration) *Report {
	r := &Report{Names: names, Challenge: challenge, Duration: d}
	multi := len(vantages) > 1
	// A name passes from a vantage when that vantage found no Error or Fatal.
	pass := map[[2]string]bool{}
	for _, v := range vantages {
		for _, n := range names {
			pass[[2]string{v.Name, n}] = true
		}
	}
	type key struct {
		name, code, detail string
	}
	seenBy := map[key][]string{}
	var order []key
	first := map[key]Finding{}
	// causes are what made each vantage fail each name (see failedAlike).
	causes := map[[2]string][]string{}
	for _, o := range outcomes {
		if o.Failed {
			pass[[2]string{o.Vantage, o.Name}] = false
		}
		for _, c := range o.Checks {
			if multi {
				c.Vantage = o.Vantage
			}
			r.Checks = append(r.Checks, c)
		}
		for _, f := range o.Findings {
			k := key{f.Name, string(f.Code), mergeKey(f)}
			if f.Severity >= Error {
				pass[[2]string{o.Vantage, f.Name}] = false
				causes[[2]string{o.Vantage, f.Name}] = append(causes[[2]string{o.Vantage, f.Name}], k.code+"\x00"+k.detail)
			}
			if _, ok := first[k]; !ok {
				first[k] = f
				order = append(order, k)
			}
			if !slices.Contains(seenBy[k], o.Vantage) {
				seenBy[k] = append(seenBy[k], o.Vantage)
			}
		}
	}

	var external, cluster []VantageInfo
	for _, v := range vantages {
		ok := true
		for _, n := range names {
			ok = ok && pass[[2]string{v.Name, n}]
		}
		r.Vantages = append(r.Vantages, VantageStatus{Name: v.Name, OK: ok})
		if v.External {
			external = append(external, v)
		} else {
			cluster = append(cluster, v)
		}
	}
	quorum := make(map[string]*Quorum, len(names))
	for _, n := range names {
		perspectives := make([]Perspective, 0, len(vantages))
		for _, v := range vantages {
			perspectives = append(perspectives, Perspective{Name: v.Name, RIR: v.RIR, External: v.External, OK: pass[[2]string{v.Name, n}]})
		}
		q := ComputeQuorum(perspectives)
		quorum[n] = q
		if q != nil && (r.Quorum == nil || r.Quorum.OK && (!q.OK || q.Margin() < r.Quorum.Margin())) {
			r.Quorum = q
		}
	}
	if r.Quorum != nil && len(names) > 1 {
		for n, q := range quorum {
			if q == r.Quorum {
				r.Quorum.Name = n
			}
		}
	}

	// How a vantage-specific failure counts: with the name's quorum
	// holding, the CA still issues, so it is a warning; without a quorum
	// to judge, it stands.
	downgrade := func(vantage, name string) bool {
		for _, v := range vantages {
			if v.Name == vantage {
				q := quorum[name]
				return !v.External && allPass(pass, external, []string{name}) || v.External && q != nil && q.OK
			}
		}
		return false
	}
	for _, k := range order {
		f := first[k]
		by := seenBy[k]
		if !multi || len(by) == len(vantages) {
			r.Findings = append(r.Findings, f)
			continue
		}
		for _, v := range by {
			g := f
			g.Vantage = v
			if g.Problem != nil && isExternal(vantages, v) {
				// What a remote perspective alone sees, Let's Encrypt reports
				// with this prefix (Boulder's doRemoteOperation).
				p := *g.Problem
				p.Detail = "During secondary validation: " + p.Detail
				g.Problem = &p
			}
			if g.Severity >= Error && downgrade(v, g.Name) {
				g = g.With("severity_from_this_vantage_alone", g.Severity.String()).WithSeverity(Warning)
			}
			r.Findings = append(r.Findings, g)
		}
	}
	for _, n := range names {
		q := quorum[n]
		if failedAlike(n, external, pass, causes) {
			q = nil // the shared cause leads; the quorum stays in r.Quorum
		}
		r.Findings = append(r.Findings, mpicFindings(n, q, external, cluster, pass)...)
	}
	r.Finalize()
	return r
}

// mergeKey says when two vantages saw the same thing: the ACME problem
// Let's Encrypt would return when there is one (the observed detail also
// names the vantage's own source address), else the detail.
func mergeKey(f Finding) string {
	if f.Problem != nil {
		return f.Problem.Type + "\x00" + f.Problem.Detail
	}
	return f.Detail
}

func isExternal(vantages []VantageInfo, name string) bool {
	for _, v := range vantages {
		if v.Name == name {
			return v.External
		}
	}
	return false
}

func allPass(pass map[[2]string]bool, vs []VantageInfo, names []string) bool {
	if len(vs) == 0 {
		return false
	}
	for _, v := range vs {
		for _, n := range names {
			if !pass[[2]string{v.Name, n}] {
				return false
			}
		}
	}
	return true
}

// failedAlike reports whether every remote perspective fails name and one
// cause (a finding of error severity, as Assemble merges them) is among the
// failures of each. The quorum finding is for perspectives that disagree
// (some pass, or each fails for reasons of its own): there its fix — make
// the name reachable from every region — is the point. When they all fail
// alike, the shared cause is the thing to fix and leads the report; a
// quorum finding above it, with a fix about geo-blocking, would send the
// user the wrong way. The quorum itself stays in the report (Report.Quorum,
// a line of the text and markdown renderings).
func failedAlike(name string, external []VantageInfo, pass map[[2]string]bool, causes map[[2]string][]string) bool {
	var shared []string
	for i, v := range external {
		k := [2]string{v.Name, name}
		if pass[k] {
			return false
		}
		if i == 0 {
			shared = slices.Clone(causes[k])
			continue
		}
		shared = slices.DeleteFunc(shared, func(c string) bool { return !slices.Contains(causes[k], c) })
	}
	return len(shared) > 0
}

// mpicFindings says what the perspectives' disagreement about one name means.
func mpicFindings(name string, q *Quorum, external, cluster []VantageInfo, pass map[[2]string]bool) []Finding {
	var failing, passing []string
	for _, v := range external {
		label := v.Name
		if v.RIR != "" {
			label += " (" + v.RIR + ")"
		}
		if pass[[2]string{v.Name, name}] {
			passing = append(passing, label)
		} else {
			failing = append(failing, label)
		}
	}
	var fs []Finding
	if q != nil && len(failing) > 0 {
		detail := fmt.Sprintf("%d of %d remote perspectives fail (%s); %d may fail with %d perspectives, and the passing ones must span 2 RIRs",
			len(failing), len(external), strings.Join(failing, ", "), q.AllowedFailures, len(external))
		if len(passing) > 0 {
			detail += fmt.Sprintf("; passing: %s", strings.Join(passing, ", "))
		}
		ev := map[string]any{"failing": failing, "passing": passing, "allowed_failures": q.AllowedFailures}
		code := CodeMPICPartial
		if !q.OK {
			code = CodeMPICQuorumFailed
		}
		f := New(code, name, detail)
		for k, v := range ev {
			f = f.With(k, v)
		}
		fs = append(fs, f)
	}
	if len(cluster) > 0 && len(failing) == 0 && len(external) > 0 {
		var blocked []string
		for _, v := range cluster {
			if !pass[[2]string{v.Name, name}] {
				blocked = append(blocked, v.Name)
			}
		}
		if len(blocked) == len(cluster) {
			fs = append(fs, New(CodeVantageSelfCheckOnly, name, fmt.Sprintf(
				"every external vantage passes, but the in-cluster %s %s: the CA would validate, cert-manager's self-check from inside the cluster would not (hairpin NAT, PROXY protocol or in-cluster DNS)",
				plural(len(blocked), "vantage", "vantages"), strings.Join(blocked, ", ")+plural(len(blocked), " fails", " fail"))).With("vantages", blocked))
		}
	}
	return fs
}
