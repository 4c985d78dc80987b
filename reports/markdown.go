package reports

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// Markdown output ends up in tickets, chat and pull requests, where it is
// rendered as HTML. Details quote what servers answered, so a hostile TXT
// record or HTTP body could otherwise close a table cell, open a heading or
// inject HTML. Two rules keep it inert: untrusted text outside code goes
// through mdEscape (every character markdown or HTML gives a meaning is
// backslash-escaped), and untrusted text shown verbatim goes in a code span
// whose fence is longer than any backtick run inside it. Neither ever holds a
// newline, and our own syntax always starts each line.

// RenderMarkdown writes r as GitHub-flavoured markdown: a heading per name, a
// table of its findings (severity, code, vantage, summary), a list with the
// details, fix and ACME problem of each, the MPIC quorum, and the verdict.
func RenderMarkdown(w io.Writer, r *Report) error {
	if r == nil {
		return fmt.Errorf("reports: render markdown: nil report")
	}
	var b bytes.Buffer
	b.WriteString("# acmediag report\n\n")
	if r.Challenge != "" && r.Challenges == nil {
		fmt.Fprintf(&b, "Challenge: %s\n\n", codeSpan(string(r.Challenge)))
	}
	for _, g := range groupFindings(r) {
		name := mdEscape(g.name)
		if g.name == "" {
			name = "(not about one name)"
		}
		fmt.Fprintf(&b, "## %s\n\n", name)
		if c, ok := r.Challenges[g.name]; ok {
			fmt.Fprintf(&b, "Challenge: %s\n\n", codeSpan(string(c)))
		}
		if rs := r.Renewals[g.name]; rs != nil {
			fmt.Fprintf(&b, "%s\n\n", mdEscape(rs.Summary(time.Now())))
		}
		if len(g.findings) == 0 {
			b.WriteString("No problems found.\n\n")
			continue
		}
		b.WriteString("| severity | code | vantage | summary |\n| --- | --- | --- | --- |\n")
		for _, f := range g.findings {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdEscape(f.Severity.String()), cellCode(string(f.Code)),
				cellCode(f.Vantage), mdEscape(cleanField(f.Summary, false)))
		}
		b.WriteString("\n")
		for _, f := range g.findings {
			writeMarkdownFinding(&b, f)
		}
		b.WriteString("\n")
	}
	for _, tl := range r.Timelines {
		lines := tl.Lines(time.Now())
		fmt.Fprintf(&b, "## Renewal timeline\n\n%s\n\n", mdEscape(cleanField(lines[0], false)))
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "- %s\n", mdEscape(cleanField(strings.TrimSpace(l), false)))
		}
		b.WriteString("\n")
	}
	if q := r.Quorum; q != nil {
		status := "**ok**"
		if !q.OK {
			status = "**failed**"
		}
		rirs := "none"
		if len(q.PassedRIRs) > 0 {
			spans := make([]string, 0, len(q.PassedRIRs))
			for _, rir := range q.PassedRIRs {
				spans = append(spans, codeSpan(rir))
			}
			rirs = strings.Join(spans, ", ")
		}
		of := ""
		if q.Name != "" {
			of = " of " + codeSpan(q.Name) + ", the name closest to failing"
		}
		fmt.Fprintf(&b, "## MPIC quorum\n\n%s%s: %d of %d external perspectives passed, %d %s allowed; passing RIRs: %s.\n\n",
			status, of, q.Passed, q.Perspectives, q.AllowedFailures, plural(q.AllowedFailures, "failure", "failures"), rirs)
	}
	fmt.Fprintf(&b, "**Verdict: %s** — %s\n", strings.ToUpper(mdEscape(string(verdictOf(r)))), mdEscape(tallyText(r)))
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("reports: write markdown: %w", err)
	}
	return nil
}

// writeMarkdownFinding writes one finding's list item: what was observed (one
// code span per line of the detail), the fix and the ACME problem.
func writeMarkdownFinding(b *bytes.Buffer, f Finding) {
	fmt.Fprintf(b, "- **%s** %s", mdEscape(f.Severity.String()), codeSpan(string(f.Code)))
	if f.Vantage != "" {
		fmt.Fprintf(b, " (vantage %s)", codeSpan(f.Vantage))
	}
	fmt.Fprintf(b, ": %s\n", mdInline(cleanField(f.Summary, false)))
	var lines []string
	for _, l := range strings.Split(cleanField(f.Detail, true), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 0:
	case 1:
		fmt.Fprintf(b, "  - observed: %s\n", codeSpan(lines[0]))
	default:
		b.WriteString("  - observed:\n")
		for _, l := range lines {
			fmt.Fprintf(b, "    - %s\n", codeSpan(l))
		}
	}
	if fix := cleanField(f.Fix, false); strings.TrimSpace(fix) != "" {
		fmt.Fprintf(b, "  - fix: %s\n", mdInline(fix))
	}
	if p := f.Problem; p != nil {
		fmt.Fprintf(b, "  - Let's Encrypt would say: %s — %s\n", codeSpan(p.Type), codeSpan(p.Detail))
	}
}

// mdInline renders prose that marks code with backticks, as the catalogue's
// fixes do: each `quoted` part becomes a code span of its own fence and
// everything else is escaped, so the result is as inert as mdEscape's
// whatever the text holds. An unpaired backtick is escaped as text.
func mdInline(s string) string {
	parts := strings.Split(cleanText(s, false), "`")
	var b strings.Builder
	for i, p := range parts {
		switch {
		case i%2 == 0:
			b.WriteString(mdEscape(p))
		case i == len(parts)-1: // an opening backtick that is never closed
			b.WriteString("\\`" + mdEscape(p))
		default:
			b.WriteString(codeSpan(p))
		}
	}
	return b.String()
}

// mdSpecial are the characters mdEscape escapes: those that can start
// emphasis, code, links, HTML, entities, headings' closing sequences, table
// cells, strikethrough or math anywhere in a line. Characters that matter only
// at the start of a line (-, +, =, digits) are left alone, because untrusted
// text never starts one.
const mdSpecial = "\\`*_{}[]<>#|~&$"

// mdEscape makes untrusted text literal in markdown: control characters are
// removed, newlines become spaces, and every character of mdSpecial is
// backslash-escaped (CommonMark lets any ASCII punctuation be escaped). An escaped '<' or '&' cannot start
// an HTML tag or entity, an escaped '|' cannot end a table cell.
func mdEscape(s string) string {
	s = cleanText(s, false)
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for _, r := range s {
		if strings.ContainsRune(mdSpecial, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// codeSpan shows untrusted text verbatim: inside a code span markdown and
// HTML are not interpreted. The fence is one backtick longer than the longest
// run of backticks in the text, and the text is padded with a space where it
// would otherwise touch the fence. Empty text gives an empty string. Not for
// table cells: see cellCode.
func codeSpan(s string) string {
	s = cleanField(s, false)
	if strings.TrimSpace(s) == "" {
		return ""
	}
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if s[0] == '`' || s[len(s)-1] == '`' || (s[0] == ' ' && s[len(s)-1] == ' ') {
		s = " " + s + " "
	}
	return fence + s + fence
}

// cellCode is codeSpan for a table cell. GFM splits a row into cells before
// it parses code spans, treating a backslash and the character after it as a
// pair, so a '|' or a backslash inside a code span can still end the cell. Text
// holding either is written escaped as plain text instead.
func cellCode(s string) string {
	if strings.ContainsAny(s, "|\\") {
		return mdEscape(s)
	}
	return codeSpan(s)
}
