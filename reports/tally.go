package reports

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Add appends findings to the report. Call Finalize once the last one is in:
// it sorts them and sets the verdict.
func (r *Report) Add(fs ...Finding) {
	r.Findings = append(r.Findings, fs...)
}

// CountBySeverity counts the report's findings per severity. A severity with
// no finding is absent from the map (reading it gives 0).
func (r *Report) CountBySeverity() map[Severity]int {
	counts := make(map[Severity]int, int(Fatal)+1)
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	return counts
}

// verdictOf returns r.Verdict, or, for a report that was never finalized, the
// verdict Finalize would compute, so renderers never print an empty verdict.
func verdictOf(r *Report) Verdict {
	if r.Verdict != "" {
		return r.Verdict
	}
	v := VerdictPass
	for _, f := range r.Findings {
		switch {
		case f.Severity >= Error:
			return VerdictFail
		case f.Severity == Warning:
			v = VerdictWarn
		}
	}
	return v
}

// tallyText is the body of the one-line verdict shared by the text and
// markdown renderers: "2 fatal, 1 error, 3 warnings across 2 names (41 ms)".
func tallyText(r *Report) string {
	counts := r.CountBySeverity()
	var parts []string
	for _, c := range []struct {
		sev            Severity
		single, plural string
	}{
		{Fatal, "fatal", "fatal"},
		{Error, "error", "errors"},
		{Warning, "warning", "warnings"},
		{Info, "info", "info"},
	} {
		switch n := counts[c.sev]; {
		case n == 1:
			parts = append(parts, "1 "+c.single)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, c.plural))
		}
	}
	what := "no problems found"
	if len(parts) > 0 {
		what = strings.Join(parts, ", ")
	}
	names := len(r.Names)
	if names == 0 {
		names = len(groupFindings(r))
	}
	noun := "names"
	if names == 1 {
		noun = "name"
	}
	s := fmt.Sprintf("%s across %d %s", what, names, noun)
	if d := durationText(r.Duration); d != "" {
		s += " (" + d + ")"
	}
	return s
}

// durationText renders a run's duration in whole milliseconds as the JSON
// report does; zero (not measured) gives "".
func durationText(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Millisecond:
		return "<1 ms"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// findingGroup is the findings about one name, in the order renderers print.
type findingGroup struct {
	name     string
	findings []Finding
}

// groupFindings groups findings by name: first every name of r.Names in that
// order (with or without findings), then names that only occur in findings,
// in order of first appearance. Within a group the worst come first; equal
// severities keep the report's order (Finalize's code order). r is not
// modified.
func groupFindings(r *Report) []findingGroup {
	idx := make(map[string]int, len(r.Names))
	var groups []findingGroup
	for _, n := range r.Names {
		if _, dup := idx[n]; dup {
			continue
		}
		idx[n] = len(groups)
		groups = append(groups, findingGroup{name: n})
	}
	for _, f := range r.Findings {
		i, ok := idx[f.Name]
		if !ok {
			i = len(groups)
			idx[f.Name] = i
			groups = append(groups, findingGroup{name: f.Name})
		}
		groups[i].findings = append(groups[i].findings, f)
	}
	for _, g := range groups {
		sortWorstFirst(g.findings)
	}
	return groups
}

// sortWorstFirst sorts by descending severity, keeping the order of
// findings of equal severity.
func sortWorstFirst(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int { return cmp.Compare(b.Severity, a.Severity) })
}
