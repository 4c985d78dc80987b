package reports

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func renderText(t *testing.T, r *Report, o TextOptions) string {
	t.Helper()
	var buf bytes.Buffer
	if err := RenderText(&buf, r, o); err != nil {
		t.Fatalf("RenderText: %v", err)
	}
	return buf.String()
}

func TestRenderText(t *testing.T) {
	pass := &Report{Names: []string{"ok.example"}, Duration: 300 * time.Microsecond}
	pass.Finalize()
	warn := &Report{Names: []string{"w.example"}}
	warn.Add(New(CodeDNSSerialMismatch, "w.example", "ns1 serial 5, ns2 serial 4"))
	warn.Finalize()
	unfinalized := &Report{Names: []string{"u.example"}}
	unfinalized.Add(New(CodeDNSNXDomain, "u.example", "NXDOMAIN from ns1"))
	orphan := &Report{Names: []string{"a.example"}}
	orphan.Add(New(CodeACMEDirectoryUnreachable, "", "dial tcp 127.0.0.9:14000: connection refused"),
		New(CodeDNSTimeout, "other.example", "all servers silent"))
	orphan.Finalize()

	// Nothing listens on port 80: every perspective is refused alike.
	refused := New(CodeHTTP01ConnectionRefused, "r.example", "192.0.2.1 (IPv4) GET http://r.example/: connection refused").
		WithProblem(ProblemConnection, "192.0.2.1: Connection refused")
	var outcomes []outcome
	var vantages []Vantage
	for _, v := range []Vantage{{Name: "us-east", RIR: "ARIN", Kind: External}, {Name: "eu-west", RIR: "RIPE", Kind: External},
		{Name: "ap-south", RIR: "APNIC", Kind: External}} {
		vantages = append(vantages, v)
		outcomes = append(outcomes, outcome{Vantage: v.Name, Name: "r.example", Findings: []Finding{refused}})
	}
	allRefused := Assemble(subjectsOf("r.example"), vantages, observationsOf(vantages, outcomes), time.Millisecond)

	quorum := func(q *Quorum) *Report {
		r := &Report{Names: []string{"q.example"}, Quorum: q}
		r.Finalize()
		return r
	}

	for _, tc := range []struct {
		desc        string
		r           *Report
		o           TextOptions
		contains    []string
		notContains []string
	}{
		{
			desc: "quorum broken by count",
			r: quorum(ComputeQuorum([]VantageResult{ext("a", "ARIN", false), ext("b", "RIPE", false),
				ext("c", "APNIC", true), ext("d", "RIPE", true)})),
			contains: []string{"MPIC quorum: FAILED — 2 of 4 external perspectives passed, 1 failure allowed; passing RIRs: APNIC,\n  RIPE; 2 failed, only 1 allowed\n"},
		},
		{
			desc: "every perspective fails alike: the cause leads, the quorum is a line",
			r:    allRefused,
			contains: []string{"r.example\n  ERROR    http01.connection_refused ",
				"\nMPIC quorum: FAILED — 0 of 3 external perspectives passed, 1 failure allowed; passing RIRs: none; 3\n  failed, only 1 allowed\n",
				"\nFAIL — 1 error across 1 name"},
			notContains: []string{"mpic.quorum_failed", "geo-blocking"},
		},
		{
			desc:     "quorum broken by RIR diversity",
			r:        quorum(ComputeQuorum([]VantageResult{ext("a", "ARIN", true), ext("b", "ARIN", true), ext("c", "RIPE", false)})),
			contains: []string{"passing RIRs: ARIN;\n  passing perspectives span 1 RIR(s), 2 needed\n"},
		},
		{
			desc: "quorum with room to spare",
			r: quorum(ComputeQuorum([]VantageResult{ext("a", "ARIN", true), ext("b", "RIPE", true), ext("c", "APNIC", true),
				ext("d", "ARIN", true), ext("e", "RIPE", true), ext("f", "LACNIC", true)})),
			contains: []string{"MPIC quorum: ok — 6 of 6", "2 more failing perspectives tolerated"},
		},
		{
			desc: "failing report",
			r:    sampleReport(),
			contains: []string{
				"a.example\n  FATAL    caa.forbidden ",
				"\n    observed: CAA set at example:\n              0 issue \"digicert.com\"\n",
				"\n    fix:      Add `0 issue \"letsencrypt.org\"`",
				"\n    Let's Encrypt would say: urn:ietf:params:acme:error:caa — While processing CAA for a.example:",
				" eu-west  The server answers the challenge request slowly",
				"MPIC quorum: ok — 2 of 3 external perspectives passed, 1 failure allowed; passing RIRs: APNIC, RIPE;",
				"vantages: local FAIL, eu-west ok",
				"\nFAIL — 1 fatal, 1 error, 4 warnings, 1 info across 2 names (41 ms)\n",
			},
			notContains: []string{"checks:", "evidence:", "no problems found"},
		},
		{
			desc: "verbose adds evidence and checks",
			r:    sampleReport(),
			o:    TextOptions{Verbose: true},
			contains: []string{
				`    evidence: records=["0 issue \"digicert.com\""], zone="example"`,
				"checks:\n  CHECK           TARGET     STATUS   DURATION  NOTE\n",
				"  dns.delegation  a.example  ok           3 ms\n",
				"  dns.caa         a.example  fail         1 ms  CAA at example\n",
				"  http01.fetch    a.example  skipped         -\n",
			},
		},
		{
			desc:     "worst first within a name",
			r:        sampleReport(),
			contains: []string{"FATAL    caa.forbidden", "ERROR    http01.connect_timeout", "INFO     dns.info_only"},
		},
		{
			desc:        "passing report",
			r:           pass,
			contains:    []string{"ok.example\n  no problems found\n\nPASS — no problems found across 1 name (<1 ms)\n"},
			notContains: []string{"MPIC", "vantages:"},
		},
		{
			desc:     "warnings only",
			r:        warn,
			contains: []string{"WARNING  dns.serial_mismatch", "\nWARN — 1 warning across 1 name\n"},
		},
		{
			desc:     "verdict computed for an unfinalized report",
			r:        unfinalized,
			contains: []string{"\nFAIL — 1 fatal across 1 name\n"},
		},
		{
			desc: "findings about other names follow r.Names",
			r:    orphan,
			contains: []string{"a.example\n  no problems found\n\n(not about one name)\n  ERROR    acme.directory_unreachable",
				"\n\nother.example\n  ERROR    dns.timeout"},
		},
		{
			desc:        "hostile detail is cleaned",
			r:           hostileReport(),
			contains:    []string{"observed: " + hostileDetailClean[0] + "\n              " + hostileDetailClean[1] + "\n", `Incorrect TXT record "blink"`},
			notContains: []string{"pwned", "[2J", "[31m", "[5m", "\u202e", "\u009b", "\r", "\x00", "\t"},
		},
		{
			desc:        "hostile detail is cleaned with colour on too",
			r:           hostileReport(),
			o:           TextOptions{Color: true},
			contains:    []string{hostileDetailClean[0], hostileDetailClean[1], ansiRed + "ERROR  " + ansiReset},
			notContains: []string{"pwned", "[2J", "[5m", "\u202e", "\u009b", "\r"},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out := renderText(t, tc.r, tc.o)
			for _, s := range tc.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.notContains {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestRenderTextNoEscapesWithoutColor checks the whole output byte by byte:
// without Color not even our own colour sequences may appear.
func TestRenderTextNoEscapesWithoutColor(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		r         *Report
		color     bool
		wantColor bool
	}{
		{desc: "sample without colour", r: sampleReport()},
		{desc: "hostile without colour", r: hostileReport()},
		{desc: "sample with colour", r: sampleReport(), color: true, wantColor: true},
		{desc: "hostile with colour", r: hostileReport(), color: true, wantColor: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out := renderText(t, tc.r, TextOptions{Color: tc.color, Verbose: true})
			if got := strings.Contains(out, "\x1b["); got != tc.wantColor {
				t.Errorf("escape sequences present = %v, want %v:\n%q", got, tc.wantColor, out)
			}
			// With colour on, only our SGR sequences may remain: strip them and
			// nothing control-like may be left.
			plain := out
			for _, sgr := range []string{ansiReset, ansiBold, ansiDim, ansiRed, ansiBoldRed, ansiGreen, ansiBoldGreen, ansiYellow, ansiBoldYell, ansiCyan} {
				plain = strings.ReplaceAll(plain, sgr, "")
			}
			if !utf8.ValidString(plain) {
				t.Errorf("output is not valid UTF-8")
			}
			for i, r := range plain {
				if r != '\n' && (unicode.IsControl(r) || isBidiControl(r)) {
					t.Fatalf("control character %U at byte %d: %q", r, i, plain)
				}
			}
		})
	}
}

// headerColumns finds, in each finding header line, where the code and the
// summary start.
func headerColumns(t *testing.T, out string, fs []Finding) (codeCols, summaryCols map[int]bool) {
	t.Helper()
	codeCols, summaryCols = map[int]bool{}, map[int]bool{}
	lines := strings.Split(out, "\n")
	for _, f := range fs {
		found := false
		for _, l := range lines {
			i := strings.Index(l, " "+string(f.Code)+" ")
			if i < 0 || !strings.HasPrefix(l, "  ") || l[2] == ' ' {
				continue
			}
			j := strings.Index(l, f.Summary[:10])
			if j < 0 {
				continue
			}
			codeCols[utf8.RuneCountInString(l[:i+1])] = true
			summaryCols[utf8.RuneCountInString(l[:j])] = true
			found = true
		}
		if !found {
			t.Fatalf("no header line for %s in\n%s", f.Code, out)
		}
	}
	return codeCols, summaryCols
}

func TestRenderTextAlignment(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		color bool
	}{
		{desc: "plain"},
		{desc: "colour (columns counted without the escapes)", color: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := sampleReport()
			out := renderText(t, r, TextOptions{Color: tc.color})
			if tc.color {
				out = cleanText(out, true) // drops our SGR sequences, keeps the layout
			}
			codeCols, summaryCols := headerColumns(t, out, r.Findings)
			if len(codeCols) != 1 || len(summaryCols) != 1 {
				t.Errorf("columns not aligned: code starts at %v, summary at %v\n%s", codeCols, summaryCols, out)
			}
			// Severity, code (longest 22), vantage (longest 7), two spaces apart.
			if !summaryCols[2+7+2+22+2+7+2] {
				t.Errorf("summary column %v, want %d", summaryCols, 2+7+2+22+2+7+2)
			}
		})
	}
}

func TestRenderTextWidth(t *testing.T) {
	long := &Report{Names: []string{"long.example"}}
	var words []string
	for i := range 60 {
		words = append(words, fmt.Sprintf("word%02d", i))
	}
	long.Add(New(CodeDNS01TXTNotPropagated, "long.example", strings.Join(words, " ")+"\n"+strings.Repeat("x", 250)).
		WithProblem(ProblemUnauthorized, "During secondary validation: "+strings.Join(words, " ")))
	long.Findings[0].Vantage = "a-vantage-with-a-very-long-name"
	long.Finalize()

	for _, tc := range []struct {
		desc    string
		r       *Report
		o       TextOptions
		limit   int
		minRows int // the long detail must have been wrapped into at least this many lines
	}{
		{desc: "sample at default width", r: sampleReport(), o: TextOptions{Verbose: true}, limit: 100},
		{desc: "sample at 100 with colour", r: sampleReport(), o: TextOptions{Width: 100, Color: true}, limit: 100},
		{desc: "sample at 60", r: sampleReport(), o: TextOptions{Width: 60}, limit: 60},
		{desc: "long detail at 100", r: long, o: TextOptions{Width: 100}, limit: 100, minRows: 8},
		{desc: "long detail at 60", r: long, o: TextOptions{Width: 60}, limit: 60, minRows: 12},
		// At 40 columns the finding header (severity, code, vantage) cannot
		// shrink below 57; everything else wraps at 40.
		{desc: "silly width is raised to 40", r: long, o: TextOptions{Width: 5}, limit: 57, minRows: 20},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out := renderText(t, tc.r, tc.o)
			rows := 0
			for _, l := range strings.Split(out, "\n") {
				if n := utf8.RuneCountInString(cleanText(l, false)); n > tc.limit {
					t.Errorf("line of %d columns > %d: %q", n, tc.limit, l)
				}
				if strings.HasPrefix(l, strings.Repeat(" ", hangIndent)) && !strings.HasPrefix(l, strings.Repeat(" ", hangIndent+1)) {
					rows++
				}
			}
			if rows < tc.minRows {
				t.Errorf("%d continuation lines, want at least %d:\n%s", rows, tc.minRows, out)
			}
			if tc.r == long && !strings.Contains(out, "a-vantage-with-a-ve…") {
				t.Errorf("long vantage not shortened:\n%s", out)
			}
		})
	}
	if a, b := renderText(t, sampleReport(), TextOptions{}), renderText(t, sampleReport(), TextOptions{Width: 100}); a != b {
		t.Errorf("width 0 does not render like width 100")
	}
}

func TestRenderTextErrors(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		r      *Report
		wantIs error
	}{
		{desc: "nil report", r: nil},
		{desc: "failing writer", r: sampleReport(), wantIs: errBrokenPipe},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := RenderText(errWriter{}, tc.r, TextOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tc.wantIs)
			}
		})
	}
}
