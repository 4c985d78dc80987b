package dnscheck

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/reports"
)

// CAA evaluation as Boulder's VA does it (va/caa.go, RFC 8659, RFC 8657):
// the closest non-empty CAA RRset from the name up to the TLD is relevant; a
// lookup error met before it forbids; an unknown tag flagged 128 or 1
// forbids; issuewild replaces issue for a wildcard when there is any; a
// record whose value does not parse is skipped; the issuer domain must equal
// the CA's exactly; at most one accounturi and one validationmethods
// parameter; any one authorizing record allows.

// defaultCAAIdentity is Let's Encrypt's issuer domain (CP/CPS 4.2.1), used
// when a CAAPolicy names none.
const defaultCAAIdentity = "letsencrypt.org"

// Bounds on what a finding prints from untrusted records.
const (
	caaMaxPrinted      = 20  // records listed in one finding
	caaMaxValuePrinted = 200 // bytes of one tag or value
	caaMaxMalformed    = 10  // caa.malformed findings per evaluation
)

// CAAPolicy is what the CA is asked to do: who it is, for which account, by
// which challenge.
type CAAPolicy struct {
	// Identities are the CA's issuer domains, e.g. ["letsencrypt.org"];
	// empty means letsencrypt.org. Compared exactly, as Boulder does.
	Identities []string
	// AccountURI is the ACME account URL; "" = unknown: accounturi-restricted
	// records cannot be judged, and the finding says so.
	AccountURI string
	// Method is the challenge the order validates with.
	Method reports.Challenge
}

// CAALookup is the result of looking up CAA at one label, as a validating recursive resolver
// returned it (CNAMEs already followed by the resolver).
type CAALookup struct {
	// Label is the FQDN queried, e.g. "www.example.com.".
	Label string
	// Records is the CAA RRset (empty when NOERROR/NODATA, or NXDOMAIN for
	// a name other than a TLD).
	Records []*dns.CAA
	// Err is the lookup failure: SERVFAIL, NOTIMP, REFUSED, timeout, truncation.
	Err error
	// Problem is the Boulder-style DNS problem text for Err, e.g. "DNS
	// problem: SERVFAIL looking up CAA for example.com - the domain's
	// nameservers may be malfunctioning". The caller sets it.
	Problem string
}

// CAAResult is the verdict on CAA for one name.
type CAAResult struct {
	// Allowed is true when Let's Encrypt's CAA check would pass.
	Allowed bool
	// FoundAt is the name, without trailing dot, whose non-empty RRset was
	// relevant ("" if none), as Boulder prints it.
	FoundAt string
	// Relevant is that RRset.
	Relevant []*dns.CAA
	// Findings: exactly one fatal finding when not Allowed, plus a
	// caa.malformed warning per skipped record.
	Findings []reports.Finding
}

// EvaluateCAA decides like Boulder's VA. lookups run from the name up to the
// TLD (the caller queried each label in parallel, as Boulder does); they are
// put in that order here by label count should they arrive otherwise. name
// may carry "*." itself; wildcard says the same for a name without it.
//
//   - the first lookup error before any non-empty RRset forbids
//     (caa.lookup_failed); errors above it are ignored;
//   - else the closest non-empty RRset is relevant; none anywhere allows;
//   - an unknown tag with flag bit 128 or 1 forbids (caa.critical_unknown);
//     iodef, issuemail and issuevmc are known and ignored;
//   - a wildcard uses the issuewild records when at least one exists,
//     otherwise issue; no record of the kind used allows;
//   - each record's value is parsed per RFC 8659 §4.2; a malformed one is
//     skipped (caa.malformed warning naming it);
//   - the issuer domain must equal one of p.Identities exactly: a trailing
//     dot or a capital letter makes it another CA;
//   - at most one accounturi (equal to p.AccountURI) and one
//     validationmethods parameter (labels matching ^[[:alnum:]-]+$, listing
//     p.Method) per record; parameter tags are case-sensitive;
//   - any authorizing record allows.
//
// When not allowed there is exactly one fatal finding, with the most specific
// code: caa.critical_unknown; caa.accounturi_mismatch or
// caa.validationmethods_mismatch when a record names the CA but its
// parameters exclude this order; caa.issuewild_forbidden for a wildcard
// decided by issuewild; caa.forbidden otherwise.
func EvaluateCAA(name string, wildcard bool, lookups []CAALookup, p CAAPolicy) CAAResult {
	base := strings.TrimSuffix(strings.ToLower(name), ".")
	if strings.HasPrefix(base, "*.") {
		base = strings.TrimPrefix(base, "*.")
		wildcard = true
	}
	display := base
	if wildcard {
		display = "*." + base
	}
	if len(p.Identities) == 0 {
		p.Identities = []string{defaultCAAIdentity}
	}

	ordered := slices.Clone(lookups)
	slices.SortStableFunc(ordered, func(a, b CAALookup) int {
		return cmp.Compare(labelCount(b.Label), labelCount(a.Label))
	})

	var rel *CAALookup
	for i := range ordered {
		l := &ordered[i]
		if l.Err != nil {
			return CAAResult{Findings: []reports.Finding{caaLookupFailed(display, base, l)}}
		}
		if nonNil(l.Records) > 0 {
			rel = l
			break
		}
	}
	if rel == nil {
		return CAAResult{Allowed: true}
	}

	res := CAAResult{FoundAt: strings.TrimSuffix(strings.ToLower(rel.Label), "."), Relevant: rel.Records}
	var issue, issuewild, critical []*dns.CAA
	for _, rr := range rel.Records {
		if rr == nil {
			continue
		}
		switch strings.ToLower(rr.Tag) {
		case "issue":
			issue = append(issue, rr)
		case "issuewild":
			issuewild = append(issuewild, rr)
		case "iodef", "issuemail", "issuevmc":
			// Known properties Let's Encrypt does not act on, so their
			// critical flag does not matter.
		default:
			// RFC 8659's critical flag is 128; Boulder treats 1 as critical
			// too because many zone operators set that bit meaning it.
			if rr.Flag&(128|1) != 0 {
				critical = append(critical, rr)
			}
		}
	}

	set, setTag := issue, "issue"
	if wildcard && len(issuewild) > 0 {
		set, setTag = issuewild, "issuewild"
	}
	evals := make([]caaEval, 0, len(set))
	authorized := false
	malformed := 0
	for _, rr := range set {
		ev := evalCAARecord(rr, p)
		evals = append(evals, ev)
		switch ev.verdict {
		case caaAuthorizes:
			authorized = true
		case caaMalformed:
			if malformed < caaMaxMalformed {
				res.Findings = append(res.Findings, caaMalformedFinding(display, res.FoundAt, ev))
			}
			malformed++
		}
	}

	if len(critical) == 0 && (len(set) == 0 || authorized) {
		res.Allowed = true
		return res
	}
	res.Findings = append(res.Findings, caaForbidden(display, wildcard, res, p, setTag, evals, critical))
	return res
}

// caaVerdict is what one issue/issuewild record says about this order.
type caaVerdict int

const (
	caaAuthorizes      caaVerdict = iota
	caaMalformed                  // value does not parse: skipped
	caaOtherIssuer                // names another CA, or none (";")
	caaAccountMismatch            // names the CA; accounturi excludes this account
	caaAccountUnknown             // names the CA; accounturi present, our account unknown
	caaMethodMismatch             // names the CA; validationmethods excludes the method
	caaMethodUnknown              // names the CA; validationmethods present, method unknown
)

type caaEval struct {
	rr      *dns.CAA
	verdict caaVerdict
	why     string
}

// caaParam is one tag=value pair of an issue/issuewild value. Order and
// repetition are kept: a repeated accounturi makes a record unsatisfiable.
type caaParam struct{ tag, val string }

// parseCAAValue splits an issue/issuewild value into issuer domain and
// parameters the way Boulder's parseCAARecord does (RFC 8659 §4.2): split on
// ";", trim spaces and tabs, tags of ASCII letters and digits only, values of
// printable ASCII other than ";". The issuer domain itself is not checked:
// whatever it is, it matches the CA's or it does not. "ca;" is the domain
// with no parameters; "ca; a=b;" is malformed, as Boulder has it.
func parseCAAValue(v string) (string, []caaParam, error) {
	isWSP := func(r rune) bool { return r == ' ' || r == '\t' }
	parts := strings.Split(v, ";")
	issuer := strings.TrimFunc(parts[0], isWSP)
	list := parts[1:]
	if len(list) == 1 && strings.TrimFunc(list[0], isWSP) == "" {
		return issuer, nil, nil
	}
	params := make([]caaParam, 0, len(list))
	for _, raw := range list {
		tag, val, ok := strings.Cut(raw, "=")
		if !ok {
			return "", nil, fmt.Errorf("parameter %s is not tag=value", quoteTrunc(raw))
		}
		tag = strings.TrimFunc(tag, isWSP)
		for _, r := range tag {
			if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
				return "", nil, fmt.Errorf("parameter tag %s may hold only ASCII letters and digits", quoteTrunc(tag))
			}
		}
		val = strings.TrimFunc(val, isWSP)
		for _, r := range val {
			if r < 0x21 || r > 0x7e {
				return "", nil, fmt.Errorf("parameter value %s may hold only printable ASCII without spaces", quoteTrunc(val))
			}
		}
		params = append(params, caaParam{tag: tag, val: val})
	}
	return issuer, params, nil
}

// evalCAARecord judges one record of the set in use, in Boulder's order:
// parse, issuer, accounturi, validationmethods.
func evalCAARecord(rr *dns.CAA, p CAAPolicy) caaEval {
	ev := caaEval{rr: rr}
	issuer, params, err := parseCAAValue(rr.Value)
	if err != nil {
		ev.verdict, ev.why = caaMalformed, "malformed, skipped: "+err.Error()
		return ev
	}
	if !slices.Contains(p.Identities, issuer) {
		ev.verdict, ev.why = caaOtherIssuer, otherIssuerWhy(issuer, p.Identities)
		return ev
	}

	var accts, methods []string
	for _, prm := range params {
		switch prm.tag {
		case "accounturi":
			accts = append(accts, prm.val)
		case "validationmethods":
			methods = append(methods, prm.val)
		}
	}
	acctVerdict, acctWhy := caaAccountCheck(accts, p.AccountURI)
	if acctVerdict == caaAccountMismatch {
		ev.verdict, ev.why = acctVerdict, acctWhy
		return ev
	}
	// An unknown account cannot be judged, but a method mismatch fails the
	// record whatever the account, and is the more useful thing to say.
	if mv, mwhy := caaMethodCheck(methods, string(p.Method)); mv != caaAuthorizes {
		ev.verdict, ev.why = mv, mwhy
		return ev
	}
	if acctVerdict == caaAccountUnknown {
		ev.verdict, ev.why = acctVerdict, acctWhy
		return ev
	}
	ev.verdict, ev.why = caaAuthorizes, "authorizes this order"
	return ev
}

// caaAccountCheck applies RFC 8657 §3 as Boulder does: no accounturi matches
// every account; two or more make the record unsatisfiable; one must parse
// as a URI and equal the account's URL.
func caaAccountCheck(accts []string, account string) (caaVerdict, string) {
	switch {
	case len(accts) == 0:
		return caaAuthorizes, ""
	case len(accts) > 1:
		return caaAccountMismatch, fmt.Sprintf("has %d accounturi parameters; a record with more than one can authorize no account (RFC 8657 §3): publish one record per account instead", len(accts))
	}
	if _, err := url.Parse(accts[0]); err != nil {
		return caaAccountMismatch, fmt.Sprintf("accounturi %s is not a valid URI", quoteTrunc(accts[0]))
	}
	if account == "" {
		return caaAccountUnknown, fmt.Sprintf("is limited to the account %s; acmediag cannot tell whether that is the account in use (give the account URI: `--account-uri`, or `dns.account_uri` in the daemon's configuration)", quoteTrunc(accts[0]))
	}
	if accts[0] != account {
		why := fmt.Sprintf("is limited to the account %s, not %s", quoteTrunc(accts[0]), quoteTrunc(account))
		if strings.Contains(accts[0], "staging") != strings.Contains(account, "staging") {
			why += " (staging and production accounts differ)"
		}
		return caaAccountMismatch, why
	}
	return caaAuthorizes, ""
}

// caaMethodCheck applies RFC 8657 §4 as Boulder does: at most one
// validationmethods parameter; every comma-separated label must match
// ^[[:alnum:]-]+$ or the record fails; labels that name no ACME method are
// skipped; the method in use must be listed, exactly (case matters).
func caaMethodCheck(methods []string, method string) (caaVerdict, string) {
	switch {
	case len(methods) == 0:
		return caaAuthorizes, ""
	case len(methods) > 1:
		return caaMethodMismatch, fmt.Sprintf("has %d validationmethods parameters; Let's Encrypt then refuses the record", len(methods))
	}
	labels := strings.Split(methods[0], ",")
	for _, m := range labels {
		if m == "" || strings.IndexFunc(m, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-')
		}) >= 0 {
			return caaMethodMismatch, fmt.Sprintf("validationmethods=%s holds %s, which is not a method name (letters, digits and hyphens only), so the whole record fails", quoteTrunc(methods[0]), quoteTrunc(m))
		}
	}
	if method == "" {
		return caaMethodUnknown, fmt.Sprintf("is limited to validationmethods=%s; the challenge in use is unknown", quoteTrunc(methods[0]))
	}
	if slices.Contains(labels, method) {
		return caaAuthorizes, ""
	}
	why := fmt.Sprintf("is limited to validationmethods=%s, which does not list %s", quoteTrunc(methods[0]), method)
	for _, m := range labels {
		if strings.EqualFold(m, method) {
			why += fmt.Sprintf(" (%q is not %q: Let's Encrypt compares method names exactly)", m, method)
			break
		}
	}
	return caaMethodMismatch, why
}

// otherIssuerWhy explains a record naming someone else, catching the near
// misses that look right to a person: a trailing dot, capitals.
func otherIssuerWhy(issuer string, ids []string) string {
	if issuer == "" {
		return "names no CA: it forbids issuance by every CA"
	}
	for _, id := range ids {
		if strings.EqualFold(strings.TrimSuffix(issuer, "."), id) {
			return fmt.Sprintf("names %s, which is not %q: Let's Encrypt compares issuer domains exactly (no trailing dot, lower case)", quoteTrunc(issuer), id)
		}
	}
	return fmt.Sprintf("names another CA, %s", quoteTrunc(issuer))
}

// caaForbidden builds the one fatal finding for a CAA set that does not
// authorize this order.
func caaForbidden(display string, wildcard bool, res CAAResult, p CAAPolicy, setTag string, evals []caaEval, critical []*dns.CAA) reports.Finding {
	var code reports.Code
	var b strings.Builder
	fmt.Fprintf(&b, "The closest CAA records for %s are at %s (Let's Encrypt climbs from the name to the TLD and uses the first non-empty set):\n", display, res.FoundAt)
	writeCAARecords(&b, res.FoundAt, res.Relevant)

	has := func(vs ...caaVerdict) bool {
		return slices.ContainsFunc(evals, func(e caaEval) bool { return slices.Contains(vs, e.verdict) })
	}
	accountUnknown := false
	switch {
	case len(critical) > 0:
		code = reports.CodeCAACriticalUnknown
		fmt.Fprintf(&b, "They hold a property Let's Encrypt does not know, flagged critical (flag bit 128, or bit 1, which it treats alike), so it refuses to issue whatever else they say:\n")
		writeCAARecords(&b, res.FoundAt, critical)
	case has(caaAccountMismatch, caaAccountUnknown):
		code = reports.CodeCAAAccountURIMismatch
		accountUnknown = !has(caaAccountMismatch)
	case has(caaMethodMismatch, caaMethodUnknown):
		code = reports.CodeCAAValidationMethodsMismatch
	case wildcard && setTag == "issuewild":
		code = reports.CodeCAAIssueWildForbidden
	default:
		code = reports.CodeCAAForbidden
	}

	if len(evals) > 0 {
		if wildcard && setTag == "issuewild" {
			fmt.Fprintf(&b, "%s is a wildcard and the set has issuewild records, so only those count (its issue records are ignored).", display)
		} else if wildcard {
			fmt.Fprintf(&b, "%s is a wildcard but the set has no issuewild record, so its issue records count.", display)
		} else {
			fmt.Fprintf(&b, "Only the issue records count for %s.", display)
		}
		lead := " N"
		if code == reports.CodeCAACriticalUnknown {
			lead = " Apart from the critical property, n"
		}
		fmt.Fprintf(&b, "%sone authorizes %s for %s:\n", lead, strings.Join(p.Identities, " or "), display)
		for i, e := range evals {
			if i == caaMaxPrinted {
				fmt.Fprintf(&b, "  (and %d more)\n", len(evals)-i)
				break
			}
			fmt.Fprintf(&b, "  %s: %s\n", caaRecordString(e.rr), e.why)
		}
	}

	f := reports.New(code, display, strings.TrimRight(b.String(), "\n")).
		WithProblem(reports.ProblemCAA, fmt.Sprintf("While processing CAA for %s: CAA record for %s prevents issuance", display, res.FoundAt)).
		With("found_at", res.FoundAt).
		With("records", caaRecordStrings(res.Relevant)).
		With("relevant_tag", setTag).
		With("wildcard", wildcard)
	if accountUnknown {
		f = f.With("account_uri_unknown", true)
	}
	return f
}

func caaLookupFailed(display, base string, l *CAALookup) reports.Finding {
	label := strings.TrimSuffix(l.Label, ".")
	prob := l.Problem
	if prob == "" {
		prob = fmt.Sprintf("DNS problem: %v looking up CAA for %s", l.Err, label)
	}
	detail := fmt.Sprintf("Looking up CAA for %s failed (%v) before any CAA record set was found. "+
		"Let's Encrypt queries CAA at every label from %s up to the TLD and refuses to issue when a lookup "+
		"below the first record set fails: an error might hide records, and it is never taken as permission.",
		label, l.Err, base)
	return reports.New(reports.CodeCAALookupFailed, display, detail).
		WithProblem(reports.ProblemDNS, fmt.Sprintf("While processing CAA for %s: %s", display, prob)).
		With("label", label).
		With("error", l.Err.Error())
}

func caaMalformedFinding(display, foundAt string, ev caaEval) reports.Finding {
	detail := fmt.Sprintf("The CAA record %s. CAA %s is %s. Let's Encrypt ignores it, as if it were not there.",
		foundAt, caaRecordString(ev.rr), ev.why)
	return reports.New(reports.CodeCAAMalformed, display, detail).
		With("found_at", foundAt).
		With("record", caaRecordString(ev.rr))
}

func writeCAARecords(b *strings.Builder, owner string, rrs []*dns.CAA) {
	n := 0
	for _, rr := range rrs {
		if rr == nil {
			continue
		}
		if n == caaMaxPrinted {
			fmt.Fprintf(b, "  (and %d more)\n", nonNil(rrs)-n)
			return
		}
		fmt.Fprintf(b, "  %s. CAA %s\n", owner, caaRecordString(rr))
		n++
	}
}

// caaRecordString prints a record's data in zone-file order, quoting (and
// cutting) the untrusted parts so they cannot break a report line.
func caaRecordString(rr *dns.CAA) string {
	tag := rr.Tag
	if len(tag) > caaMaxValuePrinted || strings.IndexFunc(tag, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		tag = quoteTrunc(tag)
	}
	return fmt.Sprintf("%d %s %s", rr.Flag, tag, quoteTrunc(rr.Value))
}

func caaRecordStrings(rrs []*dns.CAA) []string {
	out := make([]string, 0, min(len(rrs), caaMaxPrinted))
	for _, rr := range rrs {
		if rr == nil {
			continue
		}
		if len(out) == caaMaxPrinted {
			break
		}
		out = append(out, caaRecordString(rr))
	}
	return out
}

// quoteTrunc quotes s for a report, cut to caaMaxValuePrinted bytes.
func quoteTrunc(s string) string {
	if len(s) > caaMaxValuePrinted {
		return strconv.Quote(s[:caaMaxValuePrinted]) + "..."
	}
	return strconv.Quote(s)
}

func nonNil(rrs []*dns.CAA) int {
	n := 0
	for _, rr := range rrs {
		if rr != nil {
			n++
		}
	}
	return n
}

// labelCount counts the labels of a domain name, trailing dot or not.
func labelCount(name string) int {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return 0
	}
	return strings.Count(name, ".") + 1
}
