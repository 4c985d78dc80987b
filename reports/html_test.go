package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"testing"
	"time"
)

func TestRenderHTML(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	scripted := &Report{Names: []string{"x.example"}, Challenge: "http-01"}
	scripted.Add(New(CodeHTTP01WrongBody, "x.example", `body "<script>alert(1)</script>" and `+"\u202eevil").
		WithProblem(ProblemUnauthorized, `The key authorization file from the server did not match this challenge. Expected "a" (got "<img src=x onerror=alert(1)>")`))
	scripted.Finalize()
	many := &Report{Challenge: "dns-01"}
	for i := range 30 {
		many.Names = append(many.Names, fmt.Sprintf("n%02d.example", i))
	}
	many.Add(New(CodeDNSNXDomain, "n17.example", "NXDOMAIN from ns1"))
	many.Finalize()

	// A 90-day certificate issued 80 days ago whose window (days 60-62)
	// passed, and one issued 10 days ago with its window ahead and the
	// path failing.
	day := 24 * time.Hour
	renewals := &Report{Names: []string{"old.example", "new.example"}, Challenge: "http-01", Renewals: map[string]*RenewalStatus{
		"old.example": {Certificate: CertFacts{Serial: "0a", NotBefore: now.Add(-80 * day), NotAfter: now.Add(10 * day)},
			Window: &RenewalWindow{Start: now.Add(-20 * day), Deadline: now.Add(-18 * day), Source: WindowLifetime}},
		"new.example": {Certificate: CertFacts{Serial: "0b", NotBefore: now.Add(-10 * day), NotAfter: now.Add(80 * day)},
			Window:      &RenewalWindow{Start: now.Add(50 * day), Deadline: now.Add(52 * day), Source: WindowARI, Horizon: 7 * day},
			PathFailing: true, FailingCodes: []Code{CodeHTTP01ConnectTimeout}},
	}}
	renewals.Finalize()

	cases := []struct {
		desc    string
		report  *Report
		info    PageInfo
		want    []string
		notWant []string
	}{
		{
			desc:   "names, vantage statuses, findings with fixes and problems, quorum",
			report: sampleReport(),
			info: PageInfo{Generated: now, Version: "v1.2.3", Ready: true,
				Vantages: []Vantage{{Name: "local"}, {Name: "eu-west"}},
				Latest: []Observation{
					{Name: "a.example", Vantage: Vantage{Name: "local"}, Kind: "dns", Start: now.Add(-100 * time.Second), OK: true},
					{Name: "a.example", Vantage: Vantage{Name: "local"}, Kind: "http-01", Start: now.Add(-90 * time.Second)},
					{Name: "a.example", Vantage: Vantage{Name: "eu-west"}, Kind: "dns", Start: now.Add(-5 * time.Second), OK: true},
				}},
			want: []string{
				"<title>acmediag — fail</title>", `id="name-a.example"`, `id="name-b.example"`,
				`<td class="fail">fail</td><td title="2026-03-01T11:58:30Z">1m30s ago</td><td>dns, http-01</td>`,
				`<td>eu-west</td><td class="pass">pass</td>`,
				"http01.connect_timeout", "Timeout during connect (likely firewall problem)", "Let's Encrypt would return",
				template.HTMLEscapeString(Lookup(CodeCAAForbidden).Fix), "version v1.2.3", "every probe has run",
				"2 of 3 remote perspectives pass",
				`id="canary-none">No canary is configured`, `id="propagation-none">No propagation times measured yet.`,
			},
			notWant: []string{"<script", "warming up"},
		},
		{
			desc:   "hostile text is escaped and cleaned",
			report: scripted,
			info:   PageInfo{Generated: now},
			want:   []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;", "warming up"},
			// The bidi override is removed, not just escaped.
			notWant: []string{"<script>", "<img", "\u202e"},
		},
		{
			desc:    "terminal escapes from a TXT record never reach the page",
			report:  hostileReport(),
			info:    PageInfo{Generated: now},
			want:    []string{"RED", "OVERWRITE"},
			notWant: []string{"\x1b", "\x07", "\x00", "\u009b"},
		},
		{
			desc:   "a re-probe button per name, the name escaped in the form's URL",
			report: &Report{Names: []string{"*.wild.example", "a.example"}, Challenge: "dns-01"},
			info:   PageInfo{Generated: now, ReprobePath: "/api/v1/reprobe"},
			want: []string{`<form method="post" action="/api/v1/reprobe?name=%2a.wild.example" class="reprobe"><button type="submit">Re-probe now</button>`,
				`action="/api/v1/reprobe?name=a.example"`},
		},
		{
			desc:   "each certificate's life as a bar: issued, the window coloured by the path, now, expiry",
			report: renewals,
			info:   PageInfo{Generated: now},
			want: []string{
				// old: window at 400-413 of 600 (days 60-62 of 90), now at day 80.
				`<rect x="400" y="14" width="13" height="12" class="window-pass"/>`,
				`<line x1="533" y1="8" x2="533" y2="32"`,
				`issued 2025-12-11</text>`, `expires 2026-03-11</text>`,
				"<figcaption>certificate 0a expires in 10d; the renewal deadline (two thirds of the certificate&#39;s lifetime) passed 18d ago; the challenge path passes now → OVERDUE</figcaption>",
				`class="window-fail"/>`,
				"the challenge path fails now (http01.connect_timeout)</figcaption>",
			},
			notWant: []string{"<script"},
		},
		{
			desc:    "no re-probe button when the server has none",
			report:  sampleReport(),
			info:    PageInfo{Generated: now},
			notWant: []string{"<form", "Re-probe"},
		},
		{
			desc:    "the cut keeps the failing names and says how many are hidden",
			report:  many,
			info:    PageInfo{Generated: now, MaxNames: 5},
			want:    []string{`id="name-n17.example"`, "25 more names are not shown here"},
			notWant: []string{`id="name-n29.example"`},
		},
		{
			desc:   "canary orders and propagation times when there are some",
			report: sampleReport(),
			info: PageInfo{Generated: now, CanaryConfigured: true, Refresh: 30,
				Orders: []Observation{{Name: "a.example", Start: now.Add(-time.Minute), Checks: []Check{{Name: "order", Status: CheckOK, Duration: 120 * time.Millisecond}},
					Trace: Trace{Problem: &Problem{Type: ProblemConnection, Detail: "Timeout during connect"}}}},
				Propagation: []Observation{{Name: "a.example", Checks: []Check{{Name: "dns01.propagation", Server: "192.0.2.53", Status: CheckOK, Duration: 12250 * time.Millisecond}}}}},
			want:    []string{`<meta http-equiv="refresh" content="30">`, `id="canary"`, "order 120 ms", "Timeout during connect", "<td>192.0.2.53</td><td>12.2</td>"},
			notWant: []string{"canary-none", "propagation-none"},
		},
		{
			desc:    "a configured canary without orders yet says so",
			report:  sampleReport(),
			info:    PageInfo{Generated: now, CanaryConfigured: true},
			want:    []string{`id="canary-none">No canary order has finished yet.`},
			notWant: []string{`id="canary"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := RenderHTML(&buf, tc.report, tc.info); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("page contains %q", w)
				}
			}
			if t.Failed() {
				t.Log(out)
			}
		})
	}
	if err := RenderHTML(&bytes.Buffer{}, nil, PageInfo{}); err == nil {
		t.Error("a nil report rendered without error")
	}
}
