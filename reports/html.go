package reports

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"
)

// PageInfo is what the daemon's report page shows besides the Report: the
// observations the report was assembled from (each name's state per
// vantage is judged from them), the canary orders and propagation watches
// when there are any, and where the page came from. Sections without data
// say so; the page never makes numbers up.
type PageInfo struct {
	Title     string    // "" → "acmediag"
	Version   string    // the daemon's build
	Generated time.Time // when the page was rendered
	Ready     bool      // every probe has run once
	// Refresh reloads the page every so many seconds (a meta refresh, no
	// script); 0 leaves it alone.
	Refresh int
	// Vantages are the vantages in force, in display order; Latest is the
	// newest observation of each (name, vantage, kind).
	Vantages []Vantage
	Latest   []Observation
	// CanaryConfigured says whether the daemon places canary orders at all;
	// Orders are the latest order per name (empty: none has finished yet).
	CanaryConfigured bool
	Orders           []Observation
	// Propagation are the latest propagation watches: a check per
	// authoritative server address, its duration the time until it served
	// the value.
	Propagation []Observation
	// Correlations are the latest failed canary attempts with their ranked
	// root causes (Correlate).
	Correlations []CorrelatedAttempt
	// MaxNames bounds the names rendered (worst first); 0 → 500. The API
	// has the rest.
	MaxNames int
	// ReprobePath, when set, gives each name a "Re-probe now" button: a
	// form POSTing to ReprobePath?name=NAME (no script needed).
	ReprobePath string
}

// vantageCell is one name as one vantage last saw it, over every probe kind.
type vantageCell struct {
	Vantage  string
	Status   CheckStatus // Judge of the vantage's latest observations of the name
	Observed time.Time   // start of the newest observation; zero when none
	Kinds    []string    // probe kinds that have reported
}

// canaryRow is one name's latest order at the CA.
type canaryRow struct {
	Name    string
	Start   time.Time
	OK      bool
	Steps   []Check
	Problem *Problem
}

// propagationRow is how long one authoritative server address took to
// serve an expected DNS-01 value.
type propagationRow struct {
	Name    string
	Server  string
	Seconds float64
}

// maxPropagationRows bounds the page's propagation table, slowest first.
const maxPropagationRows = 1000

const defaultMaxPageNames = 500

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"status":   statusWord,
	"join":     strings.Join,
	"clean":    func(s string) string { return cleanField(s, false) },
	"cleanNL":  func(s string) string { return cleanField(s, true) },
	"severity": func(s Severity) string { return s.String() },
	"since": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	},
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"ms": func(d time.Duration) string { return fmt.Sprintf("%d ms", toMillis(d)) },
}).Parse(pageHTML))

// pageName is one name's section of the page.
type pageName struct {
	Name      string
	Challenge Challenge
	Verdict   Verdict
	Vantages  []vantageCell
	Findings  []Finding
	Checks    []Check
	Lifetime  *lifetimeBar
}

// lifetimeBar draws a certificate's life for the page, as inline SVG:
// issued at the left, expiry at the right, the renewal window coloured by
// whether the challenge path passes now, and a mark at now.
type lifetimeBar struct {
	Summary            string
	WinX, WinW, NowX   int
	Issued, Expires    string
	Window             string // "pass" or "fail": the path's state
	NowInside, Expired bool
}

// lifetimeWidth is the bar's width in SVG units.
const lifetimeWidth = 600

func newLifetimeBar(rs *RenewalStatus, now time.Time) *lifetimeBar {
	if rs == nil || !rs.Certificate.NotAfter.After(rs.Certificate.NotBefore) {
		return nil
	}
	c := rs.Certificate
	life := c.NotAfter.Sub(c.NotBefore)
	x := func(t time.Time) int {
		f := float64(t.Sub(c.NotBefore)) / float64(life)
		return int(min(max(f, 0), 1) * lifetimeWidth)
	}
	b := &lifetimeBar{Summary: rs.Summary(now), NowX: x(now), Issued: c.NotBefore.UTC().Format("2006-01-02"),
		Expires: c.NotAfter.UTC().Format("2006-01-02"), Window: "pass", NowInside: !now.Before(c.NotBefore) && now.Before(c.NotAfter),
		Expired: !now.Before(c.NotAfter)}
	if rs.PathFailing {
		b.Window = "fail"
	}
	if w := rs.Window; w != nil {
		b.WinX = x(w.Start)
		b.WinW = max(x(w.Deadline)-b.WinX, 2)
	}
	return b
}

type pageData struct {
	Title       string
	Info        PageInfo
	Report      *Report
	Names       []pageName
	Hidden      int
	Canary      []canaryRow
	Propagation []propagationRow
	Correlation template.HTML // the rendered correlation section (its own template escapes it)
	Timelines   template.HTML // the renewal timelines (timeline_html.go), escaped by their template
}

// RenderHTML writes r as a self-contained HTML page: each name with its
// status per vantage and its active findings (what was observed, the fix,
// the problem Let's Encrypt would return), the MPIC quorum, the latest
// canary orders and propagation times. Every value is escaped by
// html/template, and text from the network is cleaned of control and bidi
// characters first; the page has no script.
func RenderHTML(w io.Writer, r *Report, p PageInfo) error {
	if r == nil {
		return fmt.Errorf("reports: render html: nil report")
	}
	d := pageData{Title: cmp.Or(p.Title, "acmediag"), Info: p, Report: r, Canary: canaryRows(p.Orders), Propagation: propagationRows(p.Propagation)}
	cells := vantageCells(r.Names, p.Vantages, p.Latest)
	byName := map[string][]Finding{}
	for _, f := range r.Findings {
		byName[f.Name] = append(byName[f.Name], f)
	}
	checks := map[string][]Check{}
	for _, c := range r.Checks {
		checks[c.Target] = append(checks[c.Target], c)
	}
	for _, n := range r.Names {
		pn := pageName{Name: n, Challenge: r.ChallengeOf(n), Vantages: cells[n],
			Findings: byName[n], Checks: checks[n], Verdict: VerdictPass}
		if rs := r.Renewals[n]; rs != nil {
			pn.Lifetime = newLifetimeBar(rs, p.Generated)
		}
		for _, f := range pn.Findings {
			switch {
			case f.Severity >= Error:
				pn.Verdict = VerdictFail
			case f.Severity == Warning && pn.Verdict == VerdictPass:
				pn.Verdict = VerdictWarn
			}
		}
		d.Names = append(d.Names, pn)
	}
	// Worst first, so a cut keeps what needs attention.
	rank := map[Verdict]int{VerdictFail: 0, VerdictWarn: 1, VerdictPass: 2}
	slices.SortStableFunc(d.Names, func(a, b pageName) int { return cmp.Compare(rank[a.Verdict], rank[b.Verdict]) })
	limit := p.MaxNames
	if limit <= 0 {
		limit = defaultMaxPageNames
	}
	if len(d.Names) > limit {
		d.Hidden = len(d.Names) - limit
		d.Names = d.Names[:limit]
	}
	var corr bytes.Buffer
	if err := RenderCorrelationHTML(&corr, p.Correlations); err != nil {
		return err
	}
	d.Correlation = template.HTML(corr.String()) // #nosec: produced by html/template
	var tl bytes.Buffer
	if err := RenderTimelinesHTML(&tl, r.Timelines, p.Generated); err != nil {
		return err
	}
	d.Timelines = template.HTML(tl.String()) // #nosec: produced by html/template
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		return fmt.Errorf("reports: render html: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("reports: write html: %w", err)
	}
	return nil
}

// vantageCells judges each name from each vantage over its latest
// observations, in the vantages' order; a name no vantage has observed yet
// is pending.
func vantageCells(names []string, vantages []Vantage, latest []Observation) map[string][]vantageCell {
	byKey := map[[2]string][]Observation{}
	for _, o := range latest {
		if o.Perspective() {
			k := [2]string{o.Name, o.Vantage.Name}
			byKey[k] = append(byKey[k], o)
		}
	}
	out := map[string][]vantageCell{}
	for _, n := range names {
		for _, v := range vantages {
			obs := byKey[[2]string{n, v.Name}]
			c := vantageCell{Vantage: v.Name, Status: Judge(obs)}
			for _, o := range obs {
				c.Kinds = append(c.Kinds, string(o.Kind))
				if o.Start.After(c.Observed) {
					c.Observed = o.Start
				}
			}
			slices.Sort(c.Kinds)
			out[n] = append(out[n], c)
		}
	}
	return out
}

// canaryRows is the canary table: each order, the CA's problem when it
// failed.
func canaryRows(orders []Observation) []canaryRow {
	out := make([]canaryRow, 0, len(orders))
	for _, o := range orders {
		out = append(out, canaryRow{Name: o.Name, Start: o.Start, OK: o.OK, Steps: o.Checks, Problem: o.Trace.Problem})
	}
	return out
}

// propagationRows lists, slowest first, every server address that served
// an expected value and how long it took.
func propagationRows(watches []Observation) []propagationRow {
	var out []propagationRow
	for _, o := range watches {
		for _, c := range o.Checks {
			if c.Server != "" && c.Status == CheckOK {
				out = append(out, propagationRow{Name: o.Name, Server: c.Server, Seconds: c.Duration.Seconds()})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b propagationRow) int { return cmp.Compare(b.Seconds, a.Seconds) })
	if len(out) > maxPropagationRows {
		out = out[:maxPropagationRows]
	}
	return out
}

// statusWord is how the page names a check status.
func statusWord(s CheckStatus) string {
	switch s {
	case CheckOK:
		return "pass"
	case CheckWarn:
		return "warn"
	case CheckFail:
		return "fail"
	}
	return "pending"
}

// pageHTML is the page. html/template escapes every value by context; the
// only style is inline CSS (the daemon's Content-Security-Policy allows
// inline style and no script at all).
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if gt .Info.Refresh 0}}<meta http-equiv="refresh" content="{{.Info.Refresh}}">{{end}}
<title>{{.Title}} — {{.Report.Verdict}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1b1b1b;max-width:80em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #ccc}
.meta{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.4em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
.window-pass{fill:#3a3} .window-fail{fill:#c33} figure.lifetime{margin:.5em 0}
.pass,.ok{background:#e3f6e3} .warn,.warning{background:#fff4d6} .fail,.error,.fatal{background:#fde2e2} .pending,.info{background:#eef}
.finding{border-left:.4em solid #ccc;padding:.3em .8em;margin:.6em 0} .finding.error,.finding.fatal{border-color:#c62828}
.finding.warning{border-color:#e0a000} .finding.info{border-color:#5c6bc0}
.code{font-family:monospace} dt{font-weight:600} dd{margin:0 0 .3em 1.2em;white-space:pre-wrap}
.todo{color:#666;font-style:italic}
.attempt-issued{fill:#3a3;background:#e3f6e3} .attempt-failed,.attempt-denied{fill:#c33;background:#fde2e2} .attempt-pending{fill:#e0a000;background:#fff4d6}
</style>
</head>
<body>
<h1>{{.Title}}: <span class="{{.Report.Verdict}}" id="verdict">{{.Report.Verdict}}</span></h1>
<p class="meta">{{len .Report.Names}} names · generated {{rfc3339 .Info.Generated}}{{if .Info.Version}} · version {{.Info.Version}}{{end}} ·
{{if .Info.Ready}}every probe has run{{else}}<strong>warming up: some probes have not run yet</strong>{{end}}</p>

<h2>Names</h2>
<table id="summary">
<tr><th>name</th><th>challenge</th><th>verdict</th><th>findings</th></tr>
{{range .Names}}<tr><td><a href="#name-{{.Name}}">{{.Name}}</a></td><td>{{.Challenge}}</td><td class="{{.Verdict}}">{{.Verdict}}</td><td>{{len .Findings}}</td></tr>
{{end}}</table>
{{if .Hidden}}<p class="meta">{{.Hidden}} more names are not shown here (the best ones); /api/v1/report has every name.</p>{{end}}

{{$now := .Info.Generated}}
{{range .Names}}
<section class="name" id="name-{{.Name}}">
<h2>{{.Name}} <span class="{{.Verdict}}">{{.Verdict}}</span></h2>
<p class="meta">challenge {{.Challenge}}</p>
{{with .Lifetime}}<figure class="lifetime"><svg viewBox="0 0 600 44" width="600" height="44" role="img" aria-label="{{clean .Summary}}">
<rect x="0" y="14" width="600" height="12" fill="#ddd"/>
{{if .WinW}}<rect x="{{.WinX}}" y="14" width="{{.WinW}}" height="12" class="window-{{.Window}}"/>{{end}}
{{if .NowInside}}<line x1="{{.NowX}}" y1="8" x2="{{.NowX}}" y2="32" stroke="#000" stroke-width="2"/><text x="{{.NowX}}" y="42" text-anchor="middle" font-size="10">now</text>{{end}}
<text x="0" y="10" font-size="10">issued {{.Issued}}</text><text x="600" y="10" font-size="10" text-anchor="end">{{if .Expired}}expired{{else}}expires{{end}} {{.Expires}}</text>
</svg><figcaption>{{clean .Summary}}</figcaption></figure>{{end}}
{{if $.Info.ReprobePath}}<form method="post" action="{{$.Info.ReprobePath}}?name={{.Name}}" class="reprobe"><button type="submit">Re-probe now</button> <span class="meta">every probe of this name from every vantage runs at once (not the canary, which spends the CA's rate limits)</span></form>{{end}}
{{if .Vantages}}
<table class="vantages">
<tr><th>vantage</th><th>status</th><th>last observed</th><th>probes</th></tr>
{{range .Vantages}}<tr><td>{{.Vantage}}</td><td class="{{status .Status}}">{{status .Status}}</td><td title="{{rfc3339 .Observed}}">{{since $now .Observed}}</td><td>{{join .Kinds ", "}}</td></tr>
{{end}}</table>
{{end}}
{{if .Findings}}
{{range .Findings}}
<div class="finding {{severity .Severity}}">
<p><strong class="{{severity .Severity}}">{{severity .Severity}}</strong> <span class="code">{{.Code}}</span>{{if .Vantage}} from {{.Vantage}}{{end}}: {{clean .Summary}}</p>
<dl>
{{if .Detail}}<dt>observed</dt><dd>{{cleanNL .Detail}}</dd>{{end}}
{{if .Fix}}<dt>fix</dt><dd>{{cleanNL .Fix}}</dd>{{end}}
{{with .Problem}}<dt>Let's Encrypt would return</dt><dd><span class="code">{{clean .Type}}</span>: {{cleanNL .Detail}}</dd>{{end}}
</dl>
</div>
{{end}}
{{else}}<p class="pass">No problems found.</p>{{end}}
{{if .Checks}}
<details><summary>{{len .Checks}} checks</summary>
<table><tr><th>check</th><th>vantage</th><th>status</th><th>duration</th><th>note</th></tr>
{{range .Checks}}<tr><td class="code">{{.Name}}</td><td>{{.Vantage}}</td><td class="{{.Status}}">{{.Status}}</td><td>{{ms .Duration}}</td><td>{{clean .Note}}</td></tr>
{{end}}</table>
</details>
{{end}}
</section>
{{end}}

{{with .Report.Quorum}}
<h2>Multi-perspective quorum</h2>
<p id="quorum" class="{{if .OK}}pass{{else}}fail{{end}}">{{with .Name}}{{.}}, the name closest to failing (each name has its own quorum): {{end}}{{.Passed}} of {{.Perspectives}} remote perspectives pass; {{.AllowedFailures}} may fail{{if .PassedRIRs}}; passing RIRs: {{join .PassedRIRs ", "}}{{end}} — quorum {{if .OK}}holds{{else}}fails{{end}}.</p>
{{end}}

{{.Correlation}}
{{.Timelines}}
<h2>Canary orders</h2>
{{if not .Info.CanaryConfigured}}<p class="todo" id="canary-none">No canary is configured (canary.directory): no orders are placed.</p>
{{else if not .Canary}}<p class="todo" id="canary-none">No canary order has finished yet.</p>
{{else}}
<table id="canary">
<tr><th>name</th><th>started</th><th>result</th><th>steps</th><th>the CA's problem</th></tr>
{{range .Canary}}<tr><td>{{.Name}}</td><td title="{{rfc3339 .Start}}">{{since $now .Start}}</td><td class="{{if .OK}}pass{{else}}fail{{end}}">{{if .OK}}pass{{else}}fail{{end}}</td>
<td>{{range .Steps}}<span class="{{.Status}}">{{.Name}} {{ms .Duration}}</span> {{end}}</td>
<td>{{with .Problem}}<span class="code">{{clean .Type}}</span>: {{clean .Detail}}{{end}}</td></tr>
{{end}}</table>
{{end}}

<h2>DNS propagation</h2>
{{if .Propagation}}
<table id="propagation"><tr><th>name</th><th>server address</th><th>seconds until it served the value</th></tr>
{{range .Propagation}}<tr><td>{{.Name}}</td><td>{{.Server}}</td><td>{{printf "%.1f" .Seconds}}</td></tr>
{{end}}</table>
{{else}}<p class="todo" id="propagation-none">No propagation times measured yet.</p>{{end}}
</body>
</html>
`
