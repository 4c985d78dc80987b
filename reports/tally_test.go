package reports

import (
	"maps"
	"slices"
	"testing"
	"time"
)

func TestAddAndCountBySeverity(t *testing.T) {
	for _, tc := range []struct {
		desc        string
		add         [][]Finding
		want        map[Severity]int
		wantVerdict Verdict
	}{
		{desc: "nothing", want: map[Severity]int{}, wantVerdict: VerdictPass},
		{desc: "one call, several findings", add: [][]Finding{{New(CodeDNSNXDomain, "a", ""), New(CodeDNSSerialMismatch, "a", "")}},
			want: map[Severity]int{Fatal: 1, Warning: 1}, wantVerdict: VerdictFail},
		{desc: "several calls", add: [][]Finding{{New(CodeDNSSerialMismatch, "a", "")}, {New(CodeMPICPartial, "b", "")}, nil},
			want: map[Severity]int{Warning: 2}, wantVerdict: VerdictWarn},
		{desc: "severity override counts", add: [][]Finding{{New(CodeHTTP01IPv6Unreachable, "a", "").WithSeverity(Warning)}},
			want: map[Severity]int{Warning: 1}, wantVerdict: VerdictWarn},
		{desc: "info alone passes", add: [][]Finding{{{Code: "x.y", Severity: Info, Name: "a"}}},
			want: map[Severity]int{Info: 1}, wantVerdict: VerdictPass},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := &Report{Names: []string{"a", "b"}}
			for _, fs := range tc.add {
				r.Add(fs...)
			}
			if got := r.CountBySeverity(); !maps.Equal(got, tc.want) {
				t.Errorf("CountBySeverity = %v, want %v", got, tc.want)
			}
			if got := verdictOf(r); got != tc.wantVerdict {
				t.Errorf("verdict before Finalize = %s, want %s", got, tc.wantVerdict)
			}
			r.Finalize()
			if r.Verdict != tc.wantVerdict {
				t.Errorf("Finalize verdict = %s, want %s", r.Verdict, tc.wantVerdict)
			}
		})
	}
}

func TestGroupFindings(t *testing.T) {
	r := &Report{Names: []string{"b", "a", "b"}}
	r.Add(
		Finding{Code: "w", Severity: Warning, Name: "a"},
		Finding{Code: "z", Severity: Info, Name: "zz"},
		Finding{Code: "f", Severity: Fatal, Name: "a"},
		Finding{Code: "e", Severity: Error, Name: ""},
		Finding{Code: "w2", Severity: Warning, Name: "a"},
	)
	type group struct {
		name  string
		codes []Code
	}
	var got []group
	for _, g := range groupFindings(r) {
		var codes []Code
		for _, f := range g.findings {
			codes = append(codes, f.Code)
		}
		got = append(got, group{g.name, codes})
	}
	want := []group{{"b", nil}, {"a", []Code{"f", "w", "w2"}}, {"zz", []Code{"z"}}, {"", []Code{"e"}}}
	if !slices.EqualFunc(got, want, func(a, b group) bool { return a.name == b.name && slices.Equal(a.codes, b.codes) }) {
		t.Errorf("groups = %v, want %v", got, want)
	}
	if r.Findings[0].Code != "w" {
		t.Errorf("groupFindings reordered the report's findings: %v", r.Findings)
	}
}

func TestTallyText(t *testing.T) {
	for _, tc := range []struct {
		desc string
		r    *Report
		want string
	}{
		{desc: "empty", r: &Report{}, want: "no problems found across 0 names"},
		{desc: "plurals and duration", r: &Report{Names: []string{"a", "b"}, Duration: 41 * time.Millisecond, Findings: []Finding{
			{Severity: Fatal}, {Severity: Fatal}, {Severity: Error}, {Severity: Warning}, {Severity: Warning}, {Severity: Warning},
		}}, want: "2 fatal, 1 error, 3 warnings across 2 names (41 ms)"},
		{desc: "singular", r: &Report{Names: []string{"a"}, Findings: []Finding{{Severity: Warning}, {Severity: Info}}},
			want: "1 warning, 1 info across 1 name"},
		{desc: "sub-millisecond", r: &Report{Names: []string{"a"}, Duration: time.Microsecond}, want: "no problems found across 1 name (<1 ms)"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tallyText(tc.r); got != tc.want {
				t.Errorf("tallyText = %q, want %q", got, tc.want)
			}
		})
	}
}
