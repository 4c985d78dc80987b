package reports

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleTimeline(now time.Time) Timeline {
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	return Timeline{Namespace: "shop", Certificate: "www", DNSNames: []string{"www.example.com"},
		Ready: "False", Reason: "Failed", Revision: 1, RenewalTime: at(-2 * time.Hour), NotAfter: at(10 * 24 * time.Hour),
		FailedAttempts: 1,
		Attempts: []TimelineAttempt{
			{Revision: 1, Request: "www-1", Created: now.Add(-90 * 24 * time.Hour), Ended: at(-90*24*time.Hour + time.Minute), Outcome: OutcomeIssued},
			{Revision: 2, Request: "www-2", Created: now.Add(-2 * time.Hour), Ended: at(-time.Hour), Outcome: OutcomeFailed,
				Message: "Failed to wait for order resource \"www-2-1\" to become ready",
				Order: &TimelineOrder{Name: "www-2-1", State: "invalid", Reason: "order failed",
					Challenges: []TimelineChallenge{{Name: "www-2-1-0", DNSName: "www.example.com", Type: HTTP01, State: "invalid",
						Reason: "Timeout during connect (likely firewall problem)", Solver: "ingress class nginx"}}}},
			{Revision: 2, Request: "www-3", Created: now.Add(-10 * time.Minute), Outcome: OutcomePending,
				Order: &TimelineOrder{Name: "www-3-1", State: "pending",
					Challenges: []TimelineChallenge{{Name: "www-3-1-0", DNSName: "www.example.com", Type: DNS01, State: "pending",
						Reason: `Waiting for DNS-01 challenge propagation: DNS record for "www.example.com" not yet propagated`}}}},
		}}
}

func TestTimelineCause(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tl := sampleTimeline(now)
	cases := []struct {
		desc string
		a    TimelineAttempt
		want string
	}{
		{desc: "issued: no cause", a: tl.Attempts[0], want: ""},
		{desc: "the challenge's reason beats the order's and the request's", a: tl.Attempts[1], want: "www.example.com: Timeout during connect (likely firewall problem)"},
		{desc: "a pending challenge stuck in its self-check", a: tl.Attempts[2], want: `www.example.com: Waiting for DNS-01 challenge propagation: DNS record for "www.example.com" not yet propagated`},
		{desc: "no order: the request's message", a: TimelineAttempt{Outcome: OutcomeDenied, Message: "denied by policy"}, want: "denied by policy"},
	}
	for _, tc := range cases {
		if got := tc.a.Cause(); got != tc.want {
			t.Errorf("%s: Cause() = %q, want %q", tc.desc, got, tc.want)
		}
	}
}

func TestTimelineRenderers(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := &Report{Names: []string{"www.example.com"}, Timelines: []Timeline{sampleTimeline(now)}}
	r.Finalize()

	var text bytes.Buffer
	if err := RenderText(&text, r, TextOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Certificate shop/www: Ready=False (Failed)", "#2 www-2: failed, order www-2-1 invalid — www.example.com: Timeout during connect",
		"challenge www-3-1-0 dns-01 www.example.com: pending", "renewal 2h ago"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var md bytes.Buffer
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "## Renewal timeline") || !strings.Contains(md.String(), "- 2026-") {
		t.Errorf("markdown lacks the timeline:\n%s", md.String())
	}

	var page bytes.Buffer
	if err := RenderHTML(&page, r, PageInfo{Generated: now}); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	for _, want := range []string{"<h2>Renewal timelines</h2>", `class="attempt-failed"><title>#2 failed: www.example.com: Timeout during connect (likely firewall problem)</title>`,
		`class="attempt-issued"`, `class="attempt-pending"`, "renewal window", ">now</text>"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(html), "<script") {
		t.Error("the page has a script")
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Timelines, r.Timelines) {
		t.Errorf("timelines do not survive JSON:\n%s", b)
	}
	if !strings.Contains(string(b), `"timelines":[{"namespace":"shop","certificate":"www"`) {
		t.Errorf("JSON field names changed: %s", b)
	}
}

// The bars follow time: the failed attempt sits right of the issued one,
// and now is the rightmost mark but for the margin.
func TestTimelineLayout(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tl := sampleTimeline(now)
	s := newTimelineSVG(&tl, now)
	if len(s.Bars) != 3 {
		t.Fatalf("%d bars, want 3", len(s.Bars))
	}
	if !(s.Bars[0].X < s.Bars[1].X && s.Bars[1].X <= s.Bars[2].X && s.Bars[2].X <= s.NowX) {
		t.Errorf("bars out of order: %+v now %d", s.Bars, s.NowX)
	}
	if !s.HasWindow || s.WinX > s.NowX {
		t.Errorf("renewal window at %d, now at %d: renewalTime passed, so the window starts before now", s.WinX, s.NowX)
	}
}
