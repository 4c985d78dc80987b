package reports

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// Timeline is one cert-manager Certificate's issuance history, as its
// objects tell it: each attempt (a CertificateRequest of one revision),
// the ACME Order it led to and that Order's Challenges, with times, states
// and the reasons cert-manager wrote, plus the certificate's life and
// renewal time. It is data only: probes/renewals builds it from the
// cluster, the renderers draw it.
type Timeline struct {
	Namespace   string   `json:"namespace"`
	Certificate string   `json:"certificate"`
	DNSNames    []string `json:"dns_names,omitempty"`
	// Ready is the Certificate's Ready condition ("True", "False",
	// "Unknown"; "" when absent), with its reason and message.
	Ready          string     `json:"ready,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	Message        string     `json:"message,omitempty"`
	Revision       int        `json:"revision,omitempty"`
	NotBefore      *time.Time `json:"not_before,omitempty"`
	NotAfter       *time.Time `json:"not_after,omitempty"`
	RenewalTime    *time.Time `json:"renewal_time,omitempty"`
	FailedAttempts int        `json:"failed_issuance_attempts,omitempty"`
	LastFailure    *time.Time `json:"last_failure_time,omitempty"`
	// Attempts are oldest first.
	Attempts []TimelineAttempt `json:"attempts"`
}

// Outcome is how an issuance attempt ended.
type Outcome string

const (
	OutcomePending Outcome = "pending"
	OutcomeIssued  Outcome = "issued"
	OutcomeFailed  Outcome = "failed"
	OutcomeDenied  Outcome = "denied"
)

// TimelineAttempt is one CertificateRequest and what followed it.
type TimelineAttempt struct {
	Revision int        `json:"revision"`
	Request  string     `json:"request"`
	Created  time.Time  `json:"created"`
	Ended    *time.Time `json:"ended,omitempty"`
	Outcome  Outcome    `json:"outcome"`
	// Reason and Message are the request's Ready condition.
	Reason  string         `json:"reason,omitempty"`
	Message string         `json:"message,omitempty"`
	Order   *TimelineOrder `json:"order,omitempty"`
}

// TimelineOrder is an ACME Order of an attempt.
type TimelineOrder struct {
	Name        string              `json:"name"`
	Created     time.Time           `json:"created"`
	State       string              `json:"state,omitempty"`
	Reason      string              `json:"reason,omitempty"`
	FailureTime *time.Time          `json:"failure_time,omitempty"`
	Challenges  []TimelineChallenge `json:"challenges,omitempty"`
}

// TimelineChallenge is one Challenge of an Order.
type TimelineChallenge struct {
	Name       string    `json:"name"`
	DNSName    string    `json:"dns_name"`
	Type       Challenge `json:"type"`
	Created    time.Time `json:"created"`
	State      string    `json:"state,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Presented  bool      `json:"presented"`
	Processing bool      `json:"processing"`
	// Solver says how the challenge is presented ("rfc2136 at
	// 192.0.2.1:53", "ingress class nginx").
	Solver string `json:"solver,omitempty"`
	// Token and Key are the challenge's token and key (http-01: the key
	// authorization; dns-01: the TXT value), as cmctl shows them.
	Token string `json:"token,omitempty"`
	Key   string `json:"key,omitempty"`
}

// Cause is the most specific reason an attempt has not issued: a
// challenge's reason (the self-check's or the CA's words), else the
// order's, else the request's message. "" for an issued attempt.
func (a TimelineAttempt) Cause() string {
	if a.Outcome == OutcomeIssued {
		return ""
	}
	if o := a.Order; o != nil {
		for _, c := range o.Challenges {
			if c.Reason != "" && c.State != "valid" {
				return c.DNSName + ": " + c.Reason
			}
		}
		if o.Reason != "" {
			return o.Reason
		}
	}
	return a.Message
}

// end is when the attempt stopped, or now while it runs.
func (a TimelineAttempt) end(now time.Time) time.Time {
	if a.Ended != nil {
		return *a.Ended
	}
	return now
}

// Summary is one line about the certificate: its state, next renewal and
// failed attempts.
func (t *Timeline) Summary(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Certificate %s/%s", t.Namespace, t.Certificate)
	if t.Ready != "" {
		fmt.Fprintf(&b, ": Ready=%s", t.Ready)
		if t.Reason != "" {
			fmt.Fprintf(&b, " (%s)", t.Reason)
		}
	}
	if t.NotAfter != nil {
		fmt.Fprintf(&b, ", expires %s", stamp(*t.NotAfter))
	}
	if t.RenewalTime != nil {
		fmt.Fprintf(&b, ", renewal %s", relative(*t.RenewalTime, now))
	}
	if t.FailedAttempts > 0 {
		fmt.Fprintf(&b, ", %d failed %s in a row", t.FailedAttempts, plural(t.FailedAttempts, "attempt", "attempts"))
	}
	fmt.Fprintf(&b, "; %d %s", len(t.Attempts), plural(len(t.Attempts), "request", "requests"))
	return b.String()
}

// Lines are the timeline for text output: the summary, then one line per
// attempt (oldest first) with its outcome and cause, and one per
// challenge that has not passed.
func (t *Timeline) Lines(now time.Time) []string {
	out := []string{t.Summary(now)}
	for _, a := range t.Attempts {
		line := fmt.Sprintf("%s  #%d %s: %s", stamp(a.Created), a.Revision, a.Request, a.Outcome)
		if a.Order != nil {
			line += fmt.Sprintf(", order %s %s", a.Order.Name, cmp.Or(a.Order.State, "pending"))
		}
		if c := a.Cause(); c != "" {
			line += " — " + c
		}
		out = append(out, line)
		if a.Order == nil {
			continue
		}
		for _, c := range a.Order.Challenges {
			if c.State == "valid" {
				continue
			}
			l := fmt.Sprintf("    challenge %s %s %s: %s", c.Name, c.Type, c.DNSName, cmp.Or(c.State, "pending"))
			if c.Solver != "" {
				l += " via " + c.Solver
			}
			if c.Key != "" {
				l += fmt.Sprintf(" (token %s, key %s)", c.Token, c.Key)
			}
			out = append(out, l)
		}
	}
	return out
}

// timelineSVG is a timeline laid out for the page: a time axis from the
// first attempt (or the certificate's start) to past now and the renewal
// time, one bar per attempt coloured by outcome, the renewal window from
// renewalTime to expiry, and a mark at now.
type timelineSVG struct {
	Summary   string
	Width     int
	Height    int
	Bars      []timelineBar
	WinX      int
	WinW      int
	NowX      int
	From, To  string
	HasWindow bool
}

// timelineBar is one attempt on the timeline.
type timelineBar struct {
	X, W, Y int
	Outcome Outcome
	Label   string // revision and outcome, drawn beside the bar
	Title   string // the cause, shown on hover (an SVG <title>, no script)
}

const (
	timelineWidth = 600
	timelineRow   = 16
)

func newTimelineSVG(t *Timeline, now time.Time) *timelineSVG {
	if t == nil {
		return nil
	}
	from, to := now, now
	widen := func(ts time.Time) {
		if ts.IsZero() {
			return
		}
		from, to = minTime(from, ts), maxTime(to, ts)
	}
	for _, a := range t.Attempts {
		widen(a.Created)
		widen(a.end(now))
	}
	if t.RenewalTime != nil {
		widen(*t.RenewalTime)
	}
	if len(t.Attempts) == 0 && t.NotBefore != nil {
		widen(*t.NotBefore)
	}
	if t.NotAfter != nil && t.RenewalTime != nil {
		widen(*t.NotAfter)
	}
	span := to.Sub(from)
	if span <= 0 {
		span = time.Hour
	}
	// A margin so now and the last bar are not on the edge.
	to = to.Add(span / 20)
	span = to.Sub(from)
	x := func(ts time.Time) int {
		f := float64(ts.Sub(from)) / float64(span)
		return int(min(max(f, 0), 1) * timelineWidth)
	}
	s := &timelineSVG{Summary: t.Summary(now), Width: timelineWidth, NowX: x(now), From: stamp(from), To: stamp(to)}
	y := 22
	for _, a := range t.Attempts {
		bx := x(a.Created)
		bar := timelineBar{X: bx, W: max(x(a.end(now))-bx, 3), Y: y, Outcome: a.Outcome,
			Label: fmt.Sprintf("#%d %s", a.Revision, a.Outcome), Title: cleanField(a.Cause(), false)}
		s.Bars = append(s.Bars, bar)
		y += timelineRow
	}
	if t.RenewalTime != nil {
		s.HasWindow = true
		s.WinX = x(*t.RenewalTime)
		end := to
		if t.NotAfter != nil {
			end = *t.NotAfter
		}
		s.WinW = max(x(end)-s.WinX, 2)
	}
	s.Height = y + 14
	return s
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
