package reports

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Subject is one name a report covers, and the challenge it is validated
// with.
type Subject struct {
	Name      string
	Challenge Challenge
}

// Assemble builds the report from every observation of the subjects: a
// finding seen from every vantage is reported once without a vantage, one
// seen from some only is reported per vantage; a finding of an observation
// made from no vantage (the CA's own order, the propagation watch) that a
// vantage also saw is folded into that finding as more evidence, so a cause
// reads once; then the MPIC quorum over the external vantages decides what
// a partial failure means (CA/B BR 3.2.2.9), and in-cluster vantages that
// alone fail point at cert-manager's self-check.
//
// The CA judges the quorum per name (each authorization on its own), so
// each name's findings follow that name's quorum; the report's Quorum is
// the name closest to failing (the first failing one), which is whether
// an order for all the names would pass.
func Assemble(subjects []Subject, vantages []Vantage, obs []Observation, d time.Duration) *Report {
	names := make([]string, len(subjects))
	for i, s := range subjects {
		names[i] = s.Name
	}
	r := &Report{Names: names, Duration: d}
	if len(subjects) > 0 {
		r.Challenge = subjects[0].Challenge
	}
	for _, s := range subjects {
		if s.Challenge != r.Challenge {
			r.Challenges = make(map[string]Challenge, len(subjects))
			for _, s := range subjects {
				r.Challenges[s.Name] = s.Challenge
			}
			break
		}
	}
	multi := len(vantages) > 1
	// Each vantage's latest observations of each name, judged once (Judge).
	seen := map[[2]string][]Observation{}
	type key struct {
		name, code, detail string
	}
	seenBy := map[key][]string{}
	var order []key
	first := map[key]Finding{}
	var elsewhere []Finding // from observations made from no vantage
	// causes are what made each vantage fail each name (see failedAlike).
	causes := map[[2]string][]string{}
	for _, o := range obs {
		if o.Perspective() {
			k := [2]string{o.Vantage.Name, o.Name}
			seen[k] = append(seen[k], o)
		}
		if o.Renewal != nil {
			if r.Renewals == nil {
				r.Renewals = map[string]*RenewalStatus{}
			}
			r.Renewals[o.Name] = o.Renewal
		}
		for _, c := range o.Checks {
			if multi {
				c.Vantage = o.Vantage.Name
			}
			r.Checks = append(r.Checks, c)
		}
		for _, f := range o.Findings {
			if !o.Perspective() {
				elsewhere = append(elsewhere, f)
				continue
			}
			k := key{f.Name, string(f.Code), mergeKey(f)}
			if f.Severity >= Error {
				causes[[2]string{o.Vantage.Name, f.Name}] = append(causes[[2]string{o.Vantage.Name, f.Name}], k.code+"\x00"+k.detail)
			}
			if _, ok := first[k]; !ok {
				first[k] = f
				order = append(order, k)
			}
			if !slices.Contains(seenBy[k], o.Vantage.Name) {
				seenBy[k] = append(seenBy[k], o.Vantage.Name)
			}
		}
	}
	pass := map[[2]string]bool{}
	for _, v := range vantages {
		for _, n := range names {
			pass[[2]string{v.Name, n}] = Judge(seen[[2]string{v.Name, n}]) != CheckFail
		}
	}

	var external, cluster []Vantage
	for _, v := range vantages {
		ok := true
		for _, n := range names {
			ok = ok && pass[[2]string{v.Name, n}]
		}
		r.Vantages = append(r.Vantages, VantageResult{Vantage: v, OK: ok})
		if v.External() {
			external = append(external, v)
		} else {
			cluster = append(cluster, v)
		}
	}
	quorum := make(map[string]*Quorum, len(names))
	for _, n := range names {
		results := make([]VantageResult, 0, len(vantages))
		for _, v := range vantages {
			results = append(results, VantageResult{Vantage: v, OK: pass[[2]string{v.Name, n}]})
		}
		q := ComputeQuorum(results)
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
				return !v.External() && allPass(pass, external, []string{name}) || v.External() && q != nil && q.OK
			}
		}
		return false
	}
	var fs []Finding
	for _, k := range order {
		f := first[k]
		by := seenBy[k]
		if !multi || len(by) == len(vantages) {
			fs = append(fs, f)
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
			fs = append(fs, g)
		}
	}
	r.Findings = foldElsewhere(fs, elsewhere)
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

// foldElsewhere adds the findings of observations made from no vantage:
// one whose name and code a vantage's finding has already is that cause
// seen once more (the CA's problem naming what a probe saw), and becomes
// evidence of it ("also_seen_by"), not a second finding.
func foldElsewhere(fs, elsewhere []Finding) []Finding {
	for _, e := range elsewhere {
		folded := false
		for i := range fs {
			if fs[i].Name == e.Name && fs[i].Code == e.Code {
				fs[i] = fs[i].With("also_seen_by", appendSource(fs[i].Evidence["also_seen_by"], e))
				folded = true
			}
		}
		if !folded {
			fs = append(fs, e)
		}
	}
	return fs
}

// appendSource adds e's own words to a finding's list of other sources.
func appendSource(list any, e Finding) []string {
	prev, _ := list.([]string)
	src := e.Detail
	if e.Problem != nil {
		src = e.Problem.Type + ": " + e.Problem.Detail
	}
	if len(src) > maxEvidenceLine {
		src = src[:maxEvidenceLine] + "…"
	}
	if slices.Contains(prev, src) {
		return prev
	}
	return append(slices.Clone(prev), src)
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

func isExternal(vantages []Vantage, name string) bool {
	for _, v := range vantages {
		if v.Name == name {
			return v.External()
		}
	}
	return false
}

func allPass(pass map[[2]string]bool, vs []Vantage, names []string) bool {
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
func failedAlike(name string, external []Vantage, pass map[[2]string]bool, causes map[[2]string][]string) bool {
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
func mpicFindings(name string, q *Quorum, external, cluster []Vantage, pass map[[2]string]bool) []Finding {
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
