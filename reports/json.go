package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"
)

// The JSON form is a public contract (DESIGN.md, "Contracts" → JSON):
// durations are whole milliseconds under "duration_ms", lists are always
// arrays (never null), and "quorum" is absent when there is none. The
// marshallers below embed an alias of the Go type, so a field added to Report
// or Check later appears in the JSON without touching this file.

// RenderJSON writes r as one indented JSON object followed by a newline.
func RenderJSON(w io.Writer, r *Report) error {
	if r == nil {
		return fmt.Errorf("reports: render json: nil report")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil { // Encode adds the trailing newline
		return fmt.Errorf("reports: render json: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("reports: write json: %w", err)
	}
	return nil
}

// reportAlias has Report's fields but not its methods, so marshalling it does
// not recurse into MarshalJSON.
type reportAlias Report

type reportJSON struct {
	*reportAlias
	DurationMS int64 `json:"duration_ms"`
}

// MarshalJSON adds "duration_ms" and writes nil lists as empty arrays.
func (r Report) MarshalJSON() ([]byte, error) {
	a := reportAlias(r)
	if a.Names == nil {
		a.Names = []string{}
	}
	if a.Findings == nil {
		a.Findings = []Finding{}
	}
	if a.Vantages == nil {
		a.Vantages = []VantageResult{}
	}
	if a.Checks == nil {
		a.Checks = []Check{}
	}
	return json.Marshal(reportJSON{reportAlias: &a, DurationMS: toMillis(r.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Report) UnmarshalJSON(b []byte) error {
	var a reportAlias
	v := reportJSON{reportAlias: &a}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	a.Duration = fromMillis(v.DurationMS)
	*r = Report(a)
	return nil
}

type checkAlias Check

type checkJSON struct {
	*checkAlias
	DurationMS int64 `json:"duration_ms"`
}

// MarshalJSON adds "duration_ms".
func (c Check) MarshalJSON() ([]byte, error) {
	a := checkAlias(c)
	return json.Marshal(checkJSON{checkAlias: &a, DurationMS: toMillis(c.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Check) UnmarshalJSON(b []byte) error {
	var a checkAlias
	v := checkJSON{checkAlias: &a}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	a.Duration = fromMillis(v.DurationMS)
	*c = Check(a)
	return nil
}

// toMillis is whole milliseconds, rounded down, so a sub-millisecond check
// shows 0; a negative duration (a clock step) also shows 0.
func toMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return d.Milliseconds()
}

// fromMillis converts back, saturating instead of overflowing on a hostile
// or corrupt value.
func fromMillis(ms int64) time.Duration {
	const maxMS = math.MaxInt64 / int64(time.Millisecond)
	switch {
	case ms <= 0:
		return 0
	case ms > maxMS:
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ms) * time.Millisecond
}
