package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// errWriter fails every write, to check that renderers report it.
type errWriter struct{}

var errBrokenPipe = errors.New("broken pipe")

func (errWriter) Write([]byte) (int, error) { return 0, errBrokenPipe }

func TestRenderJSONRoundTrip(t *testing.T) {
	subMS := sampleReport()
	subMS.Duration = 400 * time.Microsecond
	noQuorum := sampleReport()
	noQuorum.Quorum = nil
	empty := &Report{Names: []string{"a.example"}, Challenge: "dns-01"}
	empty.Finalize()

	for _, tc := range []struct {
		desc string
		in   *Report
		// want is the report expected back: durations truncated to whole ms.
		want func() *Report
	}{
		{desc: "full report", in: sampleReport(), want: func() *Report {
			r := sampleReport()
			r.Checks[1].Duration = time.Millisecond // 1.5 ms keeps only whole ms
			return r
		}},
		{desc: "sub-millisecond run is 0 ms", in: subMS, want: func() *Report {
			r := sampleReport()
			r.Checks[1].Duration = time.Millisecond
			r.Duration = 0
			return r
		}},
		{desc: "no quorum", in: noQuorum, want: func() *Report {
			r := sampleReport()
			r.Checks[1].Duration = time.Millisecond
			r.Quorum = nil
			return r
		}},
		{desc: "finalized report without findings", in: empty, want: func() *Report { return empty }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderJSON(&buf, tc.in); err != nil {
				t.Fatalf("RenderJSON: %v", err)
			}
			out := buf.String()
			if !strings.HasSuffix(out, "}\n") || !strings.HasPrefix(out, "{\n  \"version\": 1,") {
				t.Errorf("output is not one indented object with a trailing newline:\n%s", out)
			}
			var got Report
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("unmarshal: %v\n%s", err, out)
			}
			if want := tc.want(); !reflect.DeepEqual(&got, want) {
				t.Errorf("round trip differs\n got: %+v\nwant: %+v\njson: %s", got, *want, out)
			}
		})
	}
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestRenderJSONFieldNames pins the field names of the DESIGN.md contract.
func TestRenderJSONFieldNames(t *testing.T) {
	r := sampleReport()
	r.Findings[0].Vantage = "eu-west"
	var buf bytes.Buffer
	if err := RenderJSON(&buf, r); err != nil {
		t.Fatalf("RenderJSON: %v", err)
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		t.Fatalf("decode: %v", err)
	}
	obj := func(v any) map[string]any {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v is %T, want an object", v, v)
		}
		return m
	}
	arr := func(v any) []any {
		a, ok := v.([]any)
		if !ok {
			t.Fatalf("%v is %T, want an array", v, v)
		}
		return a
	}
	finding := obj(arr(top["findings"])[0])
	check := obj(arr(top["checks"])[0])
	for _, tc := range []struct {
		desc string
		got  []string
		want []string
	}{
		{desc: "report", got: keysOf(top), want: sorted("version", "names", "challenge", "verdict", "findings",
			"vantages", "quorum", "checks", "duration_ms")},
		{desc: "finding", got: keysOf(finding), want: sorted("code", "severity", "name", "vantage", "summary",
			"detail", "fix", "problem", "evidence")},
		{desc: "problem", got: keysOf(obj(finding["problem"])), want: sorted("type", "detail")},
		{desc: "vantage", got: keysOf(obj(arr(top["vantages"])[0])), want: sorted("name", "ok")},
		{desc: "quorum", got: keysOf(obj(top["quorum"])), want: sorted("perspectives", "passed", "allowed_failures",
			"ok", "passed_rirs")},
		{desc: "check", got: keysOf(check), want: sorted("name", "target", "status", "duration_ms")},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if !slices.Equal(tc.got, tc.want) {
				t.Errorf("keys = %v, want %v", tc.got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		desc string
		got  any
		want any
	}{
		{desc: "severity is lower-case", got: finding["severity"], want: "fatal"},
		{desc: "verdict", got: top["verdict"], want: "fail"},
		{desc: "report duration in integer ms", got: top["duration_ms"], want: json.Number("41")},
		{desc: "check duration in integer ms", got: check["duration_ms"], want: json.Number("3")},
		{desc: "sub-ms check rounds down", got: obj(arr(top["checks"])[1])["duration_ms"], want: json.Number("1")},
		{desc: "unmeasured check is 0", got: obj(arr(top["checks"])[2])["duration_ms"], want: json.Number("0")},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
}

func TestRenderJSONShape(t *testing.T) {
	for _, tc := range []struct {
		desc        string
		in          *Report
		contains    []string
		notContains []string
	}{
		{desc: "nil lists are empty arrays and no quorum is omitted", in: &Report{},
			contains:    []string{`"names": []`, `"findings": []`, `"vantages": []`, `"checks": []`, `"duration_ms": 0`},
			notContains: []string{"null", `"quorum"`}},
		{desc: "duration_ms is last, as in the contract", in: sampleReport(),
			contains: []string{"  \"duration_ms\": 41\n}\n"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderJSON(&buf, tc.in); err != nil {
				t.Fatalf("RenderJSON: %v", err)
			}
			for _, s := range tc.contains {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, buf.String())
				}
			}
			for _, s := range tc.notContains {
				if strings.Contains(buf.String(), s) {
					t.Errorf("output has %q:\n%s", s, buf.String())
				}
			}
		})
	}
}

func TestRenderJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		r      *Report
		wantIs error
	}{
		{desc: "nil report", r: nil},
		{desc: "failing writer", r: sampleReport(), wantIs: errBrokenPipe},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := RenderJSON(errWriter{}, tc.r)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tc.wantIs)
			}
		})
	}
}

func TestUnmarshalJSONHostile(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		in      string
		wantErr bool
		want    time.Duration
	}{
		{desc: "huge duration saturates", in: `{"duration_ms": 9223372036854775807}`, want: time.Duration(math.MaxInt64)},
		{desc: "negative duration is 0", in: `{"duration_ms": -5}`, want: 0},
		{desc: "unknown severity is an error", in: `{"findings":[{"severity":"catastrophic"}]}`, wantErr: true},
		{desc: "fractional ms is an error", in: `{"duration_ms": 1.5}`, wantErr: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var r Report
			err := json.Unmarshal([]byte(tc.in), &r)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && r.Duration != tc.want {
				t.Errorf("Duration = %v, want %v", r.Duration, tc.want)
			}
		})
	}
}
