package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// TextOptions controls RenderText.
type TextOptions struct {
	// Color adds ANSI colours. The CLI sets it only when stdout is a
	// terminal and NO_COLOR is unset; without it the output holds no escape
	// sequence at all.
	Color bool
	// Verbose adds each finding's evidence, the vantages and the table of
	// checks that ran.
	Verbose bool
	// Width is the column at which lines wrap; <= 0 means 100.
	Width int
	// Now is when the report is read (how long until a certificate
	// expires); zero → the current time.
	Now time.Time
}

func (o TextOptions) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

const (
	defaultTextWidth = 100
	minTextWidth     = 40 // narrower than this the columns cannot fit anyway
	maxTextWidth     = 1000

	maxCodeColumn    = 40
	maxVantageColumn = 20
	labelIndent      = 4  // "    observed: "
	labelWidth       = 10 // len("observed: ")
	hangIndent       = labelIndent + labelWidth
	minSummaryWidth  = 24 // below this the summary moves under the header
	maxEvidenceKeys  = 50
	maxEvidenceValue = 120
)

// ANSI SGR sequences, used only when TextOptions.Color is set.
const (
	ansiReset     = "\x1b[0m"
	ansiBold      = "\x1b[1m"
	ansiDim       = "\x1b[2m"
	ansiRed       = "\x1b[31m"
	ansiBoldRed   = "\x1b[1;31m"
	ansiGreen     = "\x1b[32m"
	ansiBoldGreen = "\x1b[1;32m"
	ansiYellow    = "\x1b[33m"
	ansiBoldYell  = "\x1b[1;33m"
	ansiCyan      = "\x1b[36m"
)

// RenderText writes r for a human: findings grouped by name (in r.Names
// order), worst first, in aligned columns (severity, code, vantage) followed
// by the summary, what was observed, the fix and the ACME problem Let's
// Encrypt would return; then the MPIC quorum, with Verbose the vantages and
// checks, and a one-line verdict. Text that came from the network is cleaned
// of control characters and escape sequences before it is printed.
func RenderText(w io.Writer, r *Report, o TextOptions) error {
	if r == nil {
		return fmt.Errorf("reports: render text: nil report")
	}
	width := o.Width
	if width <= 0 {
		width = defaultTextWidth
	}
	t := &textWriter{color: o.Color, width: min(max(width, minTextWidth), maxTextWidth)}
	cols := measureColumns(r.Findings)

	groups := groupFindings(r)
	for i, g := range groups {
		if i > 0 {
			t.line("")
		}
		t.heading(g.name)
		if rs := r.Renewals[g.name]; rs != nil {
			t.line("  " + cleanText(rs.Summary(o.now()), false))
		}
		if len(g.findings) == 0 {
			t.line("  " + t.paint(ansiGreen, "no problems found"))
			continue
		}
		for _, f := range g.findings {
			t.finding(f, cols, o.Verbose)
		}
	}
	for _, tl := range r.Timelines {
		t.line("")
		for i, l := range tl.Lines(o.now()) {
			if i > 0 {
				l = "  " + l
			}
			t.line(cleanText(l, false))
		}
	}
	if r.Quorum != nil {
		t.line("")
		t.quorum(r.Quorum)
	}
	if len(r.Vantages) > 0 && (o.Verbose || len(r.Vantages) > 1) {
		t.line("")
		t.vantages(r.Vantages)
	}
	if o.Verbose && len(r.Checks) > 0 {
		t.line("")
		t.checks(r.Checks)
	}
	if len(groups) > 0 || r.Quorum != nil || len(r.Timelines) > 0 {
		t.line("")
	}
	t.verdict(r)

	if _, err := w.Write(t.buf.Bytes()); err != nil {
		return fmt.Errorf("reports: write text: %w", err)
	}
	return nil
}

// columns are the widths of the aligned finding columns, measured over the
// whole report so every group lines up the same way.
type columns struct {
	sev, code, vantage int // vantage 0: no finding has one, the column is left out
}

func measureColumns(fs []Finding) columns {
	c := columns{sev: len("WARNING")}
	for _, f := range fs {
		c.sev = max(c.sev, utf8.RuneCountInString(severityLabel(f.Severity)))
		c.code = max(c.code, utf8.RuneCountInString(cleanText(string(f.Code), false)))
		if f.Vantage != "" {
			c.vantage = max(c.vantage, utf8.RuneCountInString(cleanText(f.Vantage, false)))
		}
	}
	c.code = min(c.code, maxCodeColumn)
	if c.vantage > 0 {
		c.vantage = min(max(c.vantage, 1), maxVantageColumn)
	}
	return c
}

func severityLabel(s Severity) string { return strings.ToUpper(s.String()) }

func severityColor(s Severity) string {
	switch s {
	case Fatal:
		return ansiBoldRed
	case Error:
		return ansiRed
	case Warning:
		return ansiYellow
	case Info:
		return ansiCyan
	}
	return ""
}

// textWriter collects the output; the report is written in one Write so a
// failing writer leaves no half report behind it.
type textWriter struct {
	buf   bytes.Buffer
	color bool
	width int
}

func (t *textWriter) paint(code, s string) string {
	if !t.color || code == "" || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (t *textWriter) line(s string) {
	t.buf.WriteString(strings.TrimRight(s, " "))
	t.buf.WriteByte('\n')
}

func (t *textWriter) heading(name string) {
	name = cleanText(name, false)
	if name == "" {
		name = "(not about one name)"
	}
	for _, l := range wrapText(name, t.width, t.width) {
		t.line(t.paint(ansiBold, l))
	}
}

func (t *textWriter) finding(f Finding, c columns, verbose bool) {
	var head strings.Builder
	head.WriteString("  ")
	head.WriteString(t.paint(severityColor(f.Severity), padRight(severityLabel(f.Severity), c.sev)))
	head.WriteString("  ")
	head.WriteString(padRight(cleanText(string(f.Code), false), c.code))
	head.WriteString("  ")
	col := 2 + c.sev + 2 + c.code + 2
	if c.vantage > 0 {
		v := cleanText(f.Vantage, false)
		if v == "" {
			v = "-"
		}
		head.WriteString(padRight(ellipsize(v, c.vantage), c.vantage))
		head.WriteString("  ")
		col += c.vantage + 2
	}
	summary := cleanField(f.Summary, false)
	if avail := t.width - col; avail >= minSummaryWidth {
		for i, l := range wrapText(summary, avail, avail) {
			if i == 0 {
				t.line(head.String() + l)
			} else {
				t.line(strings.Repeat(" ", col) + l)
			}
		}
	} else {
		t.line(head.String())
		t.labeled("", summary)
	}

	if d := cleanField(f.Detail, true); strings.TrimSpace(d) != "" {
		t.labeled("observed:", d)
	}
	if fix := cleanField(f.Fix, false); strings.TrimSpace(fix) != "" {
		t.labeled("fix:", fix)
	}
	if p := f.Problem; p != nil {
		t.labeled("Let's Encrypt would say:", cleanField(p.Type, false)+" — "+cleanField(p.Detail, false))
	}
	if verbose && len(f.Evidence) > 0 {
		t.labeled("evidence:", evidenceText(f.Evidence))
	}
}

// labeled prints "    label text", wrapping text (which may hold newlines)
// with continuation lines indented under the text column.
func (t *textWriter) labeled(label, text string) {
	prefix := strings.Repeat(" ", labelIndent) + padRight(label, labelWidth)
	if label != "" && utf8.RuneCountInString(label) >= labelWidth {
		prefix = strings.Repeat(" ", labelIndent) + label + " "
	}
	indent := strings.Repeat(" ", hangIndent)
	first := true
	for _, para := range strings.Split(text, "\n") {
		if strings.TrimSpace(para) == "" {
			continue
		}
		firstWidth := t.width - hangIndent
		if first {
			firstWidth = t.width - utf8.RuneCountInString(prefix)
		}
		for _, l := range wrapText(para, firstWidth, t.width-hangIndent) {
			if first {
				t.line(prefix + l)
				first = false
			} else {
				t.line(indent + l)
			}
		}
	}
}

// evidenceText renders evidence as sorted key=value pairs, each value as
// compact JSON cut to a readable length.
func evidenceText(ev map[string]any) string {
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for i, k := range keys {
		if i == maxEvidenceKeys {
			parts = append(parts, fmt.Sprintf("… %d more", len(keys)-i))
			break
		}
		b, err := json.Marshal(ev[k])
		v := string(b)
		if err != nil {
			v = fmt.Sprintf("%v", ev[k])
		}
		parts = append(parts, cleanText(k, false)+"="+ellipsize(cleanField(v, false), maxEvidenceValue))
	}
	return strings.Join(parts, ", ")
}

func (t *textWriter) quorum(q *Quorum) {
	status := t.paint(ansiBoldGreen, "ok")
	if !q.OK {
		status = t.paint(ansiBoldRed, "FAILED")
	}
	rirs := "none"
	if len(q.PassedRIRs) > 0 {
		rirs = cleanText(strings.Join(q.PassedRIRs, ", "), false)
	}
	var margin string
	switch m := q.Margin(); {
	case !q.OK && m < 0:
		margin = fmt.Sprintf("%d failed, only %d allowed", q.Perspectives-q.Passed, q.AllowedFailures)
	case !q.OK:
		margin = fmt.Sprintf("passing perspectives span %d RIR(s), %d needed", len(q.PassedRIRs), requiredRIRs)
	case m == 0:
		margin = "one more failing perspective breaks it"
	default:
		margin = fmt.Sprintf("%d more failing perspectives tolerated", m)
	}
	of := ""
	if q.Name != "" {
		of = " of " + cleanText(q.Name, false) + " (the name closest to failing)"
	}
	text := fmt.Sprintf("MPIC quorum%s: %s — %d of %d external perspectives passed, %d %s allowed; passing RIRs: %s; %s",
		of, status, q.Passed, q.Perspectives, q.AllowedFailures, plural(q.AllowedFailures, "failure", "failures"), rirs, margin)
	for i, l := range wrapText(text, t.width, t.width-2) {
		if i > 0 {
			l = "  " + l
		}
		t.line(l)
	}
}

func (t *textWriter) vantages(vs []VantageResult) {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		st := t.paint(ansiGreen, "ok")
		if !v.OK {
			st = t.paint(ansiRed, "FAIL")
		}
		parts = append(parts, ellipsize(cleanText(v.Name, false), maxVantageColumn)+" "+st)
	}
	text := "vantages: " + strings.Join(parts, ", ")
	for i, l := range wrapText(text, t.width, t.width-2) {
		if i > 0 {
			l = "  " + l
		}
		t.line(l)
	}
}

func (t *textWriter) checks(cs []Check) {
	const (
		maxName   = 28
		maxTarget = 32
		minNote   = 8
	)
	nameW, targetW, durW := len("CHECK"), len("TARGET"), len("DURATION")
	rows := make([][4]string, 0, len(cs))
	for _, c := range cs {
		d := durationText(c.Duration)
		if d == "" {
			d = "-"
		}
		row := [4]string{
			ellipsize(cleanText(c.Name, false), maxName),
			ellipsize(cleanText(c.Target, false), maxTarget),
			cleanText(string(c.Status), false),
			d,
		}
		nameW = max(nameW, utf8.RuneCountInString(row[0]))
		targetW = max(targetW, utf8.RuneCountInString(row[1]))
		durW = max(durW, utf8.RuneCountInString(row[3]))
		rows = append(rows, row)
	}
	const statusW = len("skipped")
	noteW := max(t.width-(2+nameW+2+targetW+2+statusW+2+durW+2), minNote)
	t.line("checks:")
	t.line("  " + padRight("CHECK", nameW) + "  " + padRight("TARGET", targetW) + "  " +
		padRight("STATUS", statusW) + "  " + padLeft("DURATION", durW) + "  NOTE")
	for i, row := range rows {
		status := t.paint(checkColor(cs[i].Status), padRight(row[2], statusW))
		t.line("  " + padRight(row[0], nameW) + "  " + padRight(row[1], targetW) + "  " + status + "  " +
			padLeft(row[3], durW) + "  " + ellipsize(cleanField(cs[i].Note, false), noteW))
	}
}

func checkColor(s CheckStatus) string {
	switch s {
	case CheckOK:
		return ansiGreen
	case CheckWarn:
		return ansiYellow
	case CheckFail:
		return ansiRed
	case CheckSkipped:
		return ansiDim
	}
	return ""
}

func (t *textWriter) verdict(r *Report) {
	v := verdictOf(r)
	label, color := "PASS", ansiBoldGreen
	switch v {
	case VerdictFail:
		label, color = "FAIL", ansiBoldRed
	case VerdictWarn:
		label, color = "WARN", ansiBoldYell
	case VerdictPass:
	default:
		label, color = strings.ToUpper(cleanText(string(v), false)), ""
	}
	for i, l := range wrapText(t.paint(color, label)+" — "+tallyText(r), t.width, t.width-2) {
		if i > 0 {
			l = "  " + l
		}
		t.line(l)
	}
}

func padLeft(s string, n int) string {
	if l := utf8.RuneCountInString(s); l < n {
		return strings.Repeat(" ", n-l) + s
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
