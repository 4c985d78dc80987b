package reports

import (
	"reflect"
	"testing"
)

func ext(name, rir string, ok bool) VantageResult {
	return VantageResult{Vantage: Vantage{Name: name, RIR: rir, Kind: External}, OK: ok}
}

func clu(name, rir string, ok bool) VantageResult {
	return VantageResult{Vantage: Vantage{Name: name, RIR: rir, Kind: Cluster}, OK: ok}
}

func TestComputeQuorum(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		in         []VantageResult
		want       *Quorum
		wantMargin int
	}{
		{desc: "no perspectives", in: nil, want: nil},
		{desc: "one external perspective is no quorum", in: []VantageResult{ext("a", "ARIN", true)}, want: nil},
		{desc: "cluster vantages never count", in: []VantageResult{
			clu("c1", "ARIN", true), clu("c2", "RIPE", true), ext("a", "ARIN", true),
		}, want: nil},
		{desc: "two pass in two RIRs", in: []VantageResult{ext("a", "ARIN", true), ext("b", "RIPE", true)},
			want: &Quorum{Perspectives: 2, Passed: 2, AllowedFailures: 1, OK: true, PassedRIRs: []string{"ARIN", "RIPE"}}, wantMargin: 1},
		{desc: "two, one fails: count ok but one RIR", in: []VantageResult{ext("a", "ARIN", true), ext("b", "RIPE", false)},
			want: &Quorum{Perspectives: 2, Passed: 1, AllowedFailures: 1, OK: false, PassedRIRs: []string{"ARIN"}}},
		{desc: "three, one fails, rest span two RIRs", in: []VantageResult{ext("a", "ARIN", false), ext("b", "RIPE", true), ext("c", "APNIC", true)},
			want: &Quorum{Perspectives: 3, Passed: 2, AllowedFailures: 1, OK: true, PassedRIRs: []string{"APNIC", "RIPE"}}},
		{desc: "three, one fails, rest in one RIR", in: []VantageResult{ext("a", "RIPE", false), ext("b", "ARIN", true), ext("c", "ARIN", true)},
			want: &Quorum{Perspectives: 3, Passed: 2, AllowedFailures: 1, OK: false, PassedRIRs: []string{"ARIN"}}},
		{desc: "five, two fail", in: []VantageResult{ext("a", "ARIN", false), ext("b", "RIPE", false), ext("c", "ARIN", true), ext("d", "RIPE", true), ext("e", "APNIC", true)},
			want: &Quorum{Perspectives: 5, Passed: 3, AllowedFailures: 1, OK: false, PassedRIRs: []string{"APNIC", "ARIN", "RIPE"}}, wantMargin: -1},
		{desc: "six, two fail: two allowed", in: []VantageResult{ext("a", "ARIN", false), ext("b", "ARIN", false), ext("c", "ARIN", true), ext("d", "RIPE", true), ext("e", "RIPE", true), ext("f", "LACNIC", true)},
			want: &Quorum{Perspectives: 6, Passed: 4, AllowedFailures: 2, OK: true, PassedRIRs: []string{"ARIN", "LACNIC", "RIPE"}}},
		{desc: "seven, three fail", in: []VantageResult{ext("a", "ARIN", false), ext("b", "ARIN", false), ext("c", "ARIN", false), ext("d", "RIPE", true), ext("e", "RIPE", true), ext("f", "APNIC", true), ext("g", "AFRINIC", true)},
			want: &Quorum{Perspectives: 7, Passed: 4, AllowedFailures: 2, OK: false, PassedRIRs: []string{"AFRINIC", "APNIC", "RIPE"}}, wantMargin: -1},
		{desc: "failing cluster vantages do not count against it", in: []VantageResult{
			ext("a", "ARIN", true), ext("b", "RIPE", true), ext("c", "APNIC", true),
			clu("node1", "ARIN", false), clu("node2", "ARIN", false),
		}, want: &Quorum{Perspectives: 3, Passed: 3, AllowedFailures: 1, OK: true, PassedRIRs: []string{"APNIC", "ARIN", "RIPE"}}, wantMargin: 1},
		{desc: "RIR compared case-insensitively", in: []VantageResult{ext("a", "ripe", true), ext("b", " RIPE ", true)},
			want: &Quorum{Perspectives: 2, Passed: 2, AllowedFailures: 1, OK: false, PassedRIRs: []string{"RIPE"}}, wantMargin: 1},
		{desc: "unknown RIR adds no diversity", in: []VantageResult{ext("a", "", true), ext("b", "ARIN", true)},
			want: &Quorum{Perspectives: 2, Passed: 2, AllowedFailures: 1, OK: false, PassedRIRs: []string{"ARIN"}}, wantMargin: 1},
		{desc: "all fail", in: []VantageResult{ext("a", "ARIN", false), ext("b", "RIPE", false)},
			want: &Quorum{Perspectives: 2, Passed: 0, AllowedFailures: 1, OK: false}, wantMargin: -1},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := ComputeQuorum(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ComputeQuorum = %+v, want %+v", got, tc.want)
			}
			if got != nil && got.Margin() != tc.wantMargin {
				t.Errorf("Margin() = %d, want %d", got.Margin(), tc.wantMargin)
			}
		})
	}
}

func TestAllowedFailures(t *testing.T) {
	for _, tc := range []struct {
		desc string
		n    int
		want int
	}{
		{desc: "none", n: 0, want: 0},
		{desc: "one", n: 1, want: 0},
		{desc: "two", n: 2, want: 1},
		{desc: "five", n: 5, want: 1},
		{desc: "six", n: 6, want: 2},
		{desc: "many", n: 40, want: 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := AllowedFailures(tc.n); got != tc.want {
				t.Errorf("AllowedFailures(%d) = %d, want %d", tc.n, got, tc.want)
			}
		})
	}
}
