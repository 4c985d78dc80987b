package probes

import (
	"slices"
	"time"

	"github.com/acmediag/acmediag/probes/tlscheck"
	"github.com/acmediag/acmediag/reports"
)

// KindRenewal is the observation the renewal rule derives from a name's
// others (Plan.Renewal): it is never scheduled, and made from no vantage.
const KindRenewal reports.Kind = "renewal"

// Renewal reads the renewal rule for one name from its latest
// observations: the certificate served now (the newest leaf the tls runs
// saw, from every vantage), the CA's window for it when the CA was asked,
// and whether the challenge path the renewal will use passes now — by the
// quorum of the remote perspectives as the CA counts it, and the CA's own
// order when the canary ran one. It returns false when no tls run has seen
// a certificate for the name.
//
// The findings are renewal.* (reports.AssessRenewal, the one rule) and
// tls.stale_backend across vantages, which no single run can see.
func (p *Plan) Renewal(name string, latest []reports.Observation, now time.Time) (reports.Observation, bool) {
	var served []reports.ServedCert
	var facts reports.TLSFacts
	var challenge reports.Challenge
	staleSeen := false
	for _, o := range latest {
		if o.Name != name || o.Kind != KindTLS || o.TLS == nil {
			continue
		}
		challenge = o.Challenge
		for _, s := range o.TLS.Served {
			s.Vantage = o.Vantage.Name
			served = append(served, s)
		}
		if o.TLS.ARI != nil {
			facts.ARI, facts.ARISerial = o.TLS.ARI, o.TLS.ARISerial
		}
		staleSeen = staleSeen || slices.ContainsFunc(o.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeTLSStaleBackend })
	}
	facts.Served = served
	leaf, ok := facts.Newest()
	if !ok {
		return reports.Observation{}, false
	}
	failing, codes := p.pathFailing(name, latest)
	in := reports.RenewalInput{Name: name, Serial: leaf.Serial, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Now: now,
		ChallengeFailing: failing, FailingCodes: codes}
	if p.TLS != nil {
		in.Horizon = p.TLS.Horizon
	}
	if facts.ARI != nil && facts.ARISerial == leaf.Serial {
		in.ARI = facts.ARI
	}
	a := reports.AssessRenewal(in)
	o := reports.Observation{Name: name, Challenge: challenge, Kind: KindRenewal, Start: now, Findings: a.Findings,
		Renewal: &reports.RenewalStatus{Certificate: leaf, Window: a.Window, PathFailing: failing, FailingCodes: codes}}
	if !staleSeen {
		o.Findings = append(o.Findings, tlscheck.StaleBackends(name, served)...)
	}
	return o.Finish(), true
}

// PathFailing says whether name's challenge path fails now by its latest
// observations, and the codes that say so (the renewal rule's reading,
// for the cluster watch's renewalTime too).
func (p *Plan) PathFailing(name string, latest []reports.Observation) (bool, []reports.Code) {
	return p.pathFailing(name, latest)
}

// pathFailing says whether name's challenge path fails now, and the codes
// that say so: the remote perspectives' quorum fails (or the one vantage
// there is fails), or the CA's own order failed. The tls runs are not the
// challenge path.
func (p *Plan) pathFailing(name string, latest []reports.Observation) (bool, []reports.Code) {
	byVantage := map[string][]reports.Observation{}
	var vantages []reports.Vantage
	var codes []reports.Code
	failing := false
	for _, o := range latest {
		if o.Name != name || o.Kind == KindTLS || o.Kind == KindRenewal {
			continue
		}
		for _, f := range o.Findings {
			if f.Severity >= reports.Error && !slices.Contains(codes, f.Code) {
				codes = append(codes, f.Code)
			}
		}
		if !o.Perspective() {
			failing = failing || o.Kind == KindACME && !o.OK
			continue
		}
		if !o.Vantage.External() {
			continue
		}
		if _, ok := byVantage[o.Vantage.Name]; !ok {
			vantages = append(vantages, o.Vantage)
		}
		byVantage[o.Vantage.Name] = append(byVantage[o.Vantage.Name], o)
	}
	results := make([]reports.VantageResult, 0, len(vantages))
	for _, v := range vantages {
		results = append(results, reports.VantageResult{Vantage: v, OK: reports.Judge(byVantage[v.Name]) != reports.CheckFail})
	}
	if q := reports.ComputeQuorum(results); q != nil {
		failing = failing || !q.OK
	} else if len(results) == 1 {
		failing = failing || !results[0].OK
	}
	if !failing {
		codes = nil
	}
	return failing, codes
}
