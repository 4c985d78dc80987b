package tlscheck

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// staleTolerance: certificates issued within this of each other are
// different, not stale (two backends running their own ACME clients).
const staleTolerance = time.Hour

// findings derives the tls.* findings of one inspection. Findings about a
// certificate name every address that served it, once.
func findings(name string, res Result) []reports.Finding {
	var out []reports.Finding
	type group struct {
		ch    *Chain
		addrs []string
	}
	// Per leaf: expiry and name. Per leaf and chain verdict: completeness
	// and trust (one address may send the intermediate, another not).
	var leaves, chains []*group
	find := func(gs []*group, match func(*Chain) bool) *group {
		for _, g := range gs {
			if match(g.ch) {
				return g
			}
		}
		return nil
	}
	for _, a := range res.Addrs {
		at := netip.AddrPortFrom(a.Addr, uint16(res.Port)).String()
		if a.Chain == nil {
			out = append(out, handshakeFailed(name, at, a))
			continue
		}
		ch := a.Chain
		if g := find(leaves, func(c *Chain) bool { return c.Leaf.SHA256 == ch.Leaf.SHA256 }); g != nil {
			g.addrs = append(g.addrs, at)
		} else {
			leaves = append(leaves, &group{ch: ch, addrs: []string{at}})
		}
		if g := find(chains, func(c *Chain) bool {
			return c.Leaf.SHA256 == ch.Leaf.SHA256 && c.Complete == ch.Complete && c.Trusted == ch.Trusted && c.Loop == ch.Loop
		}); g != nil {
			g.addrs = append(g.addrs, at)
		} else {
			chains = append(chains, &group{ch: ch, addrs: []string{at}})
		}
	}
	for _, g := range leaves {
		l := g.ch.Leaf
		where := strings.Join(g.addrs, ", ")
		if f, ok := ExpiryFinding(name, l, res.Now); ok {
			f.Detail = where + " " + f.Detail
			out = append(out, f.With("addresses", g.addrs))
		}
		if !g.ch.CoversName {
			out = append(out, certFinding(reports.CodeTLSNameMismatch, name, l, g.addrs,
				fmt.Sprintf("%s serves a certificate for %s (serial %s, issuer %s, expires %s), which does not cover %s", where, certNames(l), l.Serial, l.Issuer, l.NotAfter.Format(time.RFC3339), name)).
				With("dns_names", l.DNSNames))
		}
	}
	for _, g := range chains {
		ch, l := g.ch, g.ch.Leaf
		where := strings.Join(g.addrs, ", ")
		loop := ""
		if ch.Loop {
			loop = "; the served certificates' issuers form a loop (" + strings.Join(ch.Path, " → ") + " → …), walked once"
		}
		switch {
		case !ch.Complete:
			last := ch.Path[len(ch.Path)-1]
			what := "sends the leaf without the intermediate that issued it"
			if len(ch.Path) > 1 {
				what = "sends a chain that stops at " + last + ", which is not a CA certificate"
			}
			out = append(out, certFinding(reports.CodeTLSChainIncomplete, name, l, g.addrs,
				fmt.Sprintf("%s %s: the issuer %s of %s was not sent and is not among the trusted roots, so clients that do not fetch or cache intermediates fail (serial %s, expires %s, %d certificate(s) served)%s",
					where, what, l.Issuer, last, l.Serial, l.NotAfter.Format(time.RFC3339), ch.Served, loop)).
				With("served", ch.Served).With("path", ch.Path))
		case !ch.Trusted:
			why := ch.TrustError
			if l.SelfSigned {
				why = "the certificate is self-signed"
			}
			out = append(out, certFinding(reports.CodeTLSUntrusted, name, l, g.addrs,
				fmt.Sprintf("%s serves a chain (%s) that does not verify against the trusted roots (`--tls-roots`, or `tls.roots` in the daemon's configuration; the system's by default): %s (serial %s, expires %s)%s",
					where, strings.Join(ch.Path, " → "), why, l.Serial, l.NotAfter.Format(time.RFC3339), loop)).
				With("trust_error", ch.TrustError).With("path", ch.Path).With("self_signed", l.SelfSigned).With("loop", ch.Loop))
		}
	}
	var served []reports.ServedCert
	for _, a := range res.Addrs {
		if a.Chain != nil {
			served = append(served, reports.ServedCert{Addr: a.Addr, Port: res.Port, Leaf: a.Chain.Leaf, CoversName: a.Chain.CoversName})
		}
	}
	return append(out, StaleBackends(name, served)...)
}

// certFinding is a finding about one served leaf with its evidence.
func certFinding(code reports.Code, name string, l reports.CertFacts, addrs []string, detail string) reports.Finding {
	return reports.New(code, name, detail).
		With("addresses", addrs).With("serial", l.Serial).With("issuer", l.Issuer).
		With("not_before", l.NotBefore.Format(time.RFC3339)).With("not_after", l.NotAfter.Format(time.RFC3339)).
		With("sha256", l.SHA256)
}

// handshakeFailed is tls.handshake_failed for one address.
func handshakeFailed(name, at string, a AddrResult) reports.Finding {
	return reports.New(reports.CodeTLSHandshakeFailed, name,
		fmt.Sprintf("%s (SNI %s): %s", at, name, a.Err)).
		With("address", at).With("error_kind", string(a.ErrKind)).With("bytes_read", a.BytesRead)
}

// ExpiryFinding is tls.expiring for a leaf at now, judged by the share of
// its lifetime left: a warning inside the last third, an error inside the
// last tenth, fatal once expired. ok is false while more than a third is
// left. The detail starts with what the caller prefixes with the address.
func ExpiryFinding(name string, l reports.CertFacts, now time.Time) (f reports.Finding, ok bool) {
	// RFC 5280 validity is inclusive: notAfter is the last valid second.
	lifetime := l.NotAfter.Sub(l.NotBefore) + time.Second
	left := l.NotAfter.Sub(now) + time.Second
	if lifetime <= 0 {
		return f, false
	}
	var sev reports.Severity
	var state string
	switch {
	case left <= 0:
		sev, state = reports.Fatal, "expired "+days(-left)+" ago"
	case left*10 < lifetime:
		sev, state = reports.Error, "expires in "+days(left)
	case left*3 < lifetime:
		sev, state = reports.Warning, "expires in "+days(left)
	default:
		return f, false
	}
	pct := max(float64(left)/float64(lifetime)*100, 0)
	f = reports.New(reports.CodeTLSExpiring, name,
		fmt.Sprintf("serves serial %s (issuer %s), valid %s to %s: %s (%.0f %% of its %s lifetime left)",
			l.Serial, l.Issuer, l.NotBefore.Format(time.RFC3339), l.NotAfter.Format(time.RFC3339), state, pct, days(lifetime))).
		WithSeverity(sev).
		With("serial", l.Serial).With("not_before", l.NotBefore.Format(time.RFC3339)).With("not_after", l.NotAfter.Format(time.RFC3339)).
		With("seconds_left", int64(left/time.Second)).With("lifetime_seconds", int64(lifetime/time.Second))
	return f, true
}

// days is a duration in days (one decimal below ten days) or hours.
func days(d time.Duration) string {
	switch {
	case d >= 10*24*time.Hour:
		return strconv.Itoa(int((d+12*time.Hour)/(24*time.Hour))) + " days"
	case d >= 24*time.Hour:
		return strconv.FormatFloat(float64(d)/float64(24*time.Hour), 'f', 1, 64) + " days"
	case d >= time.Hour:
		return strconv.Itoa(int((d+30*time.Minute)/time.Hour)) + " h"
	default:
		return d.Round(time.Second).String()
	}
}

// where names the place a leaf was served (address, vantage) for a detail.
func where(s reports.ServedCert) string {
	w := s.Addr.String()
	if s.Port != 0 {
		w = netip.AddrPortFrom(s.Addr, uint16(s.Port)).String()
	}
	if s.Vantage != "" {
		w += " (from " + s.Vantage + ")"
	}
	return w
}

// StaleBackends compares the leaves served for name — at several addresses,
// from one or several vantages — and returns one tls.stale_backend per
// older certificate still served where a newer one (issued more than an
// hour later) is served elsewhere: the classic renewal that reached some
// backends only. Leaves that do not cover the name are left to
// tls.name_mismatch.
func StaleBackends(name string, served []reports.ServedCert) []reports.Finding {
	type group struct {
		leaf   reports.CertFacts
		where  []string
		places []reports.ServedCert
	}
	var groups []*group
	for _, s := range served {
		if !s.CoversName {
			continue
		}
		i := slices.IndexFunc(groups, func(g *group) bool { return g.leaf.SHA256 == s.Leaf.SHA256 })
		if i < 0 {
			groups = append(groups, &group{leaf: s.Leaf})
			i = len(groups) - 1
		}
		groups[i].where = append(groups[i].where, where(s))
		groups[i].places = append(groups[i].places, s)
	}
	if len(groups) < 2 {
		return nil
	}
	newest := groups[0]
	for _, g := range groups[1:] {
		if g.leaf.NotBefore.After(newest.leaf.NotBefore) {
			newest = g
		}
	}
	var out []reports.Finding
	for _, g := range groups {
		if g == newest || !g.leaf.NotBefore.Add(staleTolerance).Before(newest.leaf.NotBefore) {
			continue
		}
		var vantages []string
		for _, p := range g.places {
			if p.Vantage != "" && !slices.Contains(vantages, p.Vantage) {
				vantages = append(vantages, p.Vantage)
			}
		}
		f := reports.New(reports.CodeTLSStaleBackend, name,
			fmt.Sprintf("%s still serve(s) serial %s (issued %s, expires %s), %s older than serial %s (issued %s, expires %s) served at %s",
				strings.Join(g.where, ", "), g.leaf.Serial, g.leaf.NotBefore.Format(time.RFC3339), g.leaf.NotAfter.Format(time.RFC3339),
				days(newest.leaf.NotBefore.Sub(g.leaf.NotBefore)), newest.leaf.Serial, newest.leaf.NotBefore.Format(time.RFC3339),
				newest.leaf.NotAfter.Format(time.RFC3339), strings.Join(newest.where, ", "))).
			With("stale_at", g.where).With("stale_serial", g.leaf.Serial).With("stale_not_after", g.leaf.NotAfter.Format(time.RFC3339)).
			With("current_at", newest.where).With("current_serial", newest.leaf.Serial).With("current_not_after", newest.leaf.NotAfter.Format(time.RFC3339))
		if len(vantages) > 0 {
			f = f.With("vantages", vantages)
		}
		out = append(out, f)
	}
	return out
}
