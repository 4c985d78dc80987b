package reports

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Correlation explains a failed attempt to validate a name — a canary
// order today, a cert-manager renewal later — with what the probes saw of
// the same name, from every vantage, around the time of the attempt. It
// ranks the findings seen then as likely root causes: worse findings, seen
// from more vantages, in more of their runs, closer in time, and of the
// kind the CA's problem names (a connection problem is explained by a
// refused or timed-out connection, not by a CAA record) rank higher. It is
// pure: the caller hands it the attempt and the observations.

// Attempt is one failed validation attempt of a name, whatever placed it.
type Attempt struct {
	Name    string
	Start   time.Time
	End     time.Time // zero or before Start: taken as Start
	Problem *Problem  // the CA's problem, when it returned one
}

// Cause is one likely root cause of an attempt's failure: a finding code
// seen around the attempt, its score (higher is likelier; at most 1), the
// vantages that saw it and the observations that show it, nearest first.
type Cause struct {
	Code     Code     `json:"code"`
	Score    float64  `json:"score"`
	Severity Severity `json:"severity"`
	Vantages []string `json:"vantages"`
	// MatchesProblem says the finding is of the kind the CA's problem
	// names (for a connection problem, http01.connect_timeout ...).
	MatchesProblem bool     `json:"matches_problem"`
	Evidence       []string `json:"evidence"`
}

// CorrelateOptions bound the time window. Zero values take the defaults.
type CorrelateOptions struct {
	// Margin widens the attempt's window on both sides: observations
	// starting within it count in full proximity terms. Default 2m.
	Margin time.Duration
	// Lookback: for a vantage and probe kind with no observation in the
	// window, the newest one at most this long before the window stands in
	// (what that vantage last knew), weighted down by its distance.
	// Default 1h; negative: none.
	Lookback time.Duration
}

// Limits on what one correlation reads and returns; untrusted observation
// text never grows the output without bound.
const (
	DefaultCorrelationMargin   = 2 * time.Minute
	DefaultCorrelationLookback = time.Hour
	maxSightings               = 10_000
	maxFindingsPerSighting     = 200
	maxCauses                  = 10
	maxCauseEvidence           = 5
	maxEvidenceLine            = 300
	maxDetailCauses            = 3
)

// Codes that are consequences of validation failing, not causes: the
// attempt's own codes and the quorum verdicts derived from the findings.
var consequencePrefixes = []string{"acme.", "renewal.", "mpic.", "certmanager.", "issuer."}

// problemCodes maps an ACME problem type to the finding codes (or code
// prefixes, ending in ".") that produce it at the CA, for findings that
// carry no problem of their own.
var problemCodes = map[string][]string{
	ProblemConnection: {string(CodeHTTP01ConnectTimeout), string(CodeHTTP01ConnectionRefused), string(CodeHTTP01ConnectionReset),
		string(CodeHTTP01IPv6Unreachable), string(CodeHTTP01SlowResponse), string(CodeTLSALPNUnreachable),
		"http01.redirect_", string(CodeHTTP01TooManyRedirects), string(CodeHTTP01H2C), string(CodeHTTP01TLSOnHTTPPort)},
	ProblemDNS:                {"dns.", string(CodeDNS01CNAMEDangling)},
	ProblemCAA:                {"caa."},
	ProblemUnauthorized:       {string(CodeHTTP01BadStatus), string(CodeHTTP01WrongBody), string(CodeHTTP01NotRouted), string(CodeHTTP01WAFOrAuth), "dns01.txt_", string(CodeHTTP01IPv6DifferentContent), string(CodeHTTP01InconsistentBackends), string(CodeTLSALPNWrongCertificate)},
	ProblemTLS:                {"tlsalpn.", string(CodeHTTP01RedirectTLSError)},
	ProblemRejectedIdentifier: {"name."},
	ProblemMalformed:          {"name."},
}

// matchesProblem says whether finding f is of the kind problem type typ
// names. A finding that carries the problem LE would return is judged by
// it; others by the table above.
func matchesProblem(f Finding, typ string) bool {
	if f.Problem != nil && f.Problem.Type != "" {
		return f.Problem.Type == typ
	}
	for _, c := range problemCodes[typ] {
		prefix := strings.HasSuffix(c, ".") || strings.HasSuffix(c, "_")
		if string(f.Code) == c || prefix && strings.HasPrefix(string(f.Code), c) {
			return true
		}
	}
	return false
}

func isConsequence(c Code) bool {
	for _, p := range consequencePrefixes {
		if strings.HasPrefix(string(c), p) {
			return true
		}
	}
	return false
}

// severityWeight: a fatal finding explains a failure more surely than a
// warning; an info finding hardly at all.
func severityWeight(s Severity) float64 {
	switch {
	case s >= Fatal:
		return 1
	case s == Error:
		return 0.85
	case s == Warning:
		return 0.45
	}
	return 0.1
}

// Correlate ranks the likely root causes of attempt's failure from the
// sightings of its name, best first, at most 10. Each code seen in the
// window scores
//
//	severity × (0.5 + 0.5 × share of vantages that saw it)
//	         × (0.5 + 0.5 × share of those vantages' runs that saw it)
//	         × proximity (1 inside the window, falling with distance)
//	         × 1 when it matches the CA's problem type, 0.4 when it does not
//	           (1 for all when the CA returned no problem)
//
// so a fatal finding every vantage saw throughout the attempt, of the
// problem's kind, scores 1. No sighting in the window gives no cause: the
// CA then saw something no vantage did.
func Correlate(a Attempt, sightings []Observation, opt CorrelateOptions) []Cause {
	margin := cmp.Or(opt.Margin, DefaultCorrelationMargin)
	if margin < 0 {
		margin = 0
	}
	lookback := cmp.Or(opt.Lookback, DefaultCorrelationLookback)
	end := a.End
	if end.Before(a.Start) {
		end = a.Start
	}
	from, to := a.Start.Add(-margin), end.Add(margin)
	if len(sightings) > maxSightings {
		sightings = sightings[len(sightings)-maxSightings:] // the newest
	}

	// The sightings that count: every one overlapping the window, and for a
	// (vantage, kind) without one, its newest before the window within the
	// lookback.
	type vk struct {
		vantage string
		kind    Kind
	}
	var used []Observation
	inWindow := map[vk]bool{}
	before := map[vk]int{}
	for i, s := range sightings {
		if !s.Perspective() {
			continue // the attempt itself, or another run made from no vantage
		}
		sEnd := s.Start.Add(max(s.Duration, 0))
		k := vk{s.Vantage.Name, s.Kind}
		switch {
		case !s.Start.After(to) && !sEnd.Before(from):
			used = append(used, s)
			inWindow[k] = true
		case sEnd.Before(from) && lookback > 0 && !sEnd.Before(from.Add(-lookback)):
			if j, ok := before[k]; !ok || s.Start.After(sightings[j].Start) {
				before[k] = i
			}
		}
	}
	for k, i := range before {
		if !inWindow[k] {
			used = append(used, sightings[i])
		}
	}
	slices.SortStableFunc(used, func(x, y Observation) int {
		return cmp.Or(x.Start.Compare(y.Start), cmp.Compare(x.Vantage.Name, y.Vantage.Name), cmp.Compare(x.Kind, y.Kind))
	})

	// distance from the attempt: 0 when the run overlaps it.
	distance := func(s Observation) time.Duration {
		sEnd := s.Start.Add(max(s.Duration, 0))
		switch {
		case sEnd.Before(a.Start):
			return a.Start.Sub(sEnd)
		case s.Start.After(end):
			return s.Start.Sub(end)
		}
		return 0
	}
	proximity := func(d time.Duration) float64 {
		if d <= margin {
			return 1
		}
		// Half at twice the margin, falling on from there.
		return float64(margin+time.Second) / float64(d+time.Second)
	}

	vantages := map[string]bool{}
	runs := map[vk]int{} // runs per (vantage, kind) among used
	for _, s := range used {
		vantages[s.Vantage.Name] = true
		runs[vk{s.Vantage.Name, s.Kind}]++
	}
	type acc struct {
		code     Code
		severity Severity
		matches  bool
		seenBy   map[string]bool
		runsWith map[vk]int
		prox     float64
		// nearest evidence per vantage
		ev map[string]evidenceItem
	}
	accs := map[Code]*acc{}
	for _, s := range used {
		d := distance(s)
		seenHere := map[Code]bool{}
		fs := s.Findings
		if len(fs) > maxFindingsPerSighting {
			fs = fs[:maxFindingsPerSighting]
		}
		for _, f := range fs {
			// Every finding of a run about the name counts, whatever name
			// it is about: a CNAME target, a parent zone's CAA or a
			// delegation above is on the name's validation path.
			if f.Severity < Info || isConsequence(f.Code) {
				continue
			}
			c := accs[f.Code]
			if c == nil {
				c = &acc{code: f.Code, seenBy: map[string]bool{}, runsWith: map[vk]int{}, ev: map[string]evidenceItem{}}
				accs[f.Code] = c
			}
			c.severity = max(c.severity, f.Severity)
			if a.Problem != nil && a.Problem.Type != "" && matchesProblem(f, a.Problem.Type) {
				c.matches = true
			}
			c.seenBy[s.Vantage.Name] = true
			if !seenHere[f.Code] {
				seenHere[f.Code] = true
				c.runsWith[vk{s.Vantage.Name, s.Kind}]++
			}
			c.prox = max(c.prox, proximity(d))
			if e, ok := c.ev[s.Vantage.Name]; !ok || d < e.distance {
				c.ev[s.Vantage.Name] = evidenceItem{distance: d, at: s.Start, kind: s.Kind, vantage: s.Vantage.Name, finding: f, attempt: a}
			}
		}
	}

	problem := a.Problem != nil && a.Problem.Type != ""
	causes := make([]Cause, 0, len(accs))
	for _, c := range accs {
		runsTotal, runsSeen := 0, 0
		for k, n := range c.runsWith {
			runsSeen += n
			runsTotal += runs[k]
		}
		score := severityWeight(c.severity) *
			(0.5 + 0.5*float64(len(c.seenBy))/float64(max(len(vantages), 1))) *
			(0.5 + 0.5*float64(runsSeen)/float64(max(runsTotal, 1))) *
			c.prox
		if problem && !c.matches {
			score *= 0.4
		}
		cause := Cause{Code: c.code, Score: math.Round(score*1000) / 1000, Severity: c.severity, MatchesProblem: c.matches}
		for v := range c.seenBy {
			cause.Vantages = append(cause.Vantages, v)
		}
		slices.Sort(cause.Vantages)
		items := make([]evidenceItem, 0, len(c.ev))
		for _, e := range c.ev {
			items = append(items, e)
		}
		slices.SortFunc(items, func(x, y evidenceItem) int {
			return cmp.Or(cmp.Compare(x.distance, y.distance), cmp.Compare(x.vantage, y.vantage))
		})
		for i, e := range items {
			if i == maxCauseEvidence {
				cause.Evidence = append(cause.Evidence, fmt.Sprintf("… and %d more vantages", len(items)-i))
				break
			}
			cause.Evidence = append(cause.Evidence, e.String())
		}
		if runsTotal > 0 {
			cause.Evidence = append(cause.Evidence, fmt.Sprintf("seen in %d of %d runs of those vantages around the attempt", runsSeen, runsTotal))
		}
		causes = append(causes, cause)
	}
	slices.SortFunc(causes, func(x, y Cause) int {
		return cmp.Or(cmp.Compare(y.Score, x.Score), cmp.Compare(y.Severity, x.Severity), cmp.Compare(x.Code, y.Code))
	})
	if len(causes) > maxCauses {
		causes = causes[:maxCauses]
	}
	return causes
}

// evidenceItem is the observation nearest to the attempt of one vantage
// that saw a cause.
type evidenceItem struct {
	distance time.Duration
	at       time.Time
	kind     Kind
	vantage  string
	finding  Finding
	attempt  Attempt
}

// String says who saw what, when relative to the attempt.
func (e evidenceItem) String() string {
	var when string
	switch {
	case e.distance == 0:
		when = "during the attempt"
	case e.at.Before(e.attempt.Start):
		when = e.distance.Round(time.Second).String() + " before the attempt"
	default:
		when = e.distance.Round(time.Second).String() + " after the attempt"
	}
	who := e.vantage
	if who == "" {
		who = "the local vantage"
	}
	// The problem LE would return is Boulder's short wording (address,
	// URL, what happened); the detail, when there is no problem, is longer.
	text := e.finding.Detail
	if p := e.finding.Problem; p != nil && p.Detail != "" {
		text = p.Detail
	}
	detail := cleanField(strings.ReplaceAll(text, "\n", " "), false)
	if detail == "" {
		detail = e.finding.Summary
	}
	return ellipsize(fmt.Sprintf("%s (%s probe, %s): %s", who, e.kind, when, detail), maxEvidenceLine)
}

// CorrelationDetail is the sentence that names the top causes and their
// evidence, appended to the attempt's finding (acme.order_failed for a
// canary, renewal.failed for a renewal).
func CorrelationDetail(causes []Cause) string {
	if len(causes) == 0 {
		return "No vantage observed a problem with this name around the attempt: the CA saw something the probes did not (a difference in DNS view, a firewall rule for the CA's addresses, or a change made since)."
	}
	var b strings.Builder
	top := causes[0]
	fmt.Fprintf(&b, "Most likely root cause: %s (score %.2f, seen from %s", top.Code, top.Score, vantageList(top.Vantages))
	if top.MatchesProblem {
		b.WriteString(", the kind of problem the CA returned")
	}
	b.WriteString(")")
	if len(top.Evidence) > 0 {
		b.WriteString(": " + top.Evidence[0])
	}
	b.WriteString(".")
	if len(causes) > 1 {
		var others []string
		for _, c := range causes[1:min(len(causes), maxDetailCauses)] {
			others = append(others, fmt.Sprintf("%s (%.2f)", c.Code, c.Score))
		}
		b.WriteString(" Also seen: " + strings.Join(others, ", ") + ".")
	}
	return b.String()
}

func vantageList(vs []string) string {
	if len(vs) == 0 {
		return "the local vantage"
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = cmp.Or(v, "local")
	}
	return strings.Join(out, ", ")
}

// ExplainFinding appends the correlation to f (the attempt's own finding)
// and records the ranked causes in its evidence under "root_causes", so
// the JSON report carries them for machines and the detail for people.
func ExplainFinding(f Finding, causes []Cause) Finding {
	if f.Detail != "" {
		f.Detail += "\n"
	}
	f.Detail += CorrelationDetail(causes)
	if causes == nil {
		causes = []Cause{}
	}
	return f.With("root_causes", causes)
}

// CorrelatedAttempt is an attempt with its ranked causes, for display.
type CorrelatedAttempt struct {
	Attempt Attempt
	Causes  []Cause
}

var correlationTemplate = template.Must(template.New("correlation").Funcs(template.FuncMap{
	"clean":    func(s string) string { return cleanField(s, false) },
	"severity": func(s Severity) string { return s.String() },
	"join":     strings.Join,
	"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur": func(a Attempt) string {
		if a.End.After(a.Start) {
			return a.End.Sub(a.Start).Round(time.Millisecond).String()
		}
		return "0s"
	},
	"inc":   func(i int) int { return i + 1 },
	"score": func(f float64) string { return fmt.Sprintf("%.2f", f) },
}).Parse(`<h2>Last canary: likely root causes</h2>
<section id="correlation">
{{range .}}<div class="correlation" id="correlation-{{.Attempt.Name}}">
<p><strong>{{.Attempt.Name}}</strong>: the canary order started {{rfc3339 .Attempt.Start}} ({{dur .Attempt}}) failed{{with .Attempt.Problem}} with <span class="code">{{clean .Type}}</span>: {{clean .Detail}}{{end}}.</p>
{{if .Causes}}<table class="causes">
<tr><th>#</th><th>cause</th><th>score</th><th>seen from</th><th>evidence</th></tr>
{{range $i, $c := .Causes}}<tr><td>{{inc $i}}</td><td class="{{severity $c.Severity}}"><span class="code">{{$c.Code}}</span>{{if $c.MatchesProblem}} ✓ matches the CA's problem{{end}}</td><td>{{score $c.Score}}</td><td>{{join $c.Vantages ", "}}</td><td>{{range $c.Evidence}}{{clean .}}<br>{{end}}</td></tr>
{{end}}</table>
{{else}}<p class="todo">No vantage observed a problem with this name around the attempt: the CA saw something the probes did not.</p>{{end}}
</div>
{{end}}</section>
`))

// RenderCorrelationHTML writes the "last canary" section of the report
// page: each failed attempt with its ranked causes. Nothing is written for
// no attempts. Values are escaped by html/template and cleaned of control
// and bidi characters.
func RenderCorrelationHTML(w io.Writer, attempts []CorrelatedAttempt) error {
	if len(attempts) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := correlationTemplate.Execute(&buf, attempts); err != nil {
		return fmt.Errorf("reports: render correlation: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("reports: write correlation: %w", err)
	}
	return nil
}
