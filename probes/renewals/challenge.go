package renewals

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"

	"github.com/acmediag/acmediag/reports"
)

// Check is what the CA will verify for one Challenge, with the Challenge's
// own token and key, and how its solver presents the answer: the probes
// runtime turns it into a target (http-01: fetch Token, expect Key; dns-01:
// the TXT at _acme-challenge equal to Key everywhere) and, for an rfc2136
// solver, also asks the solver's own server.
type Check struct {
	Namespace string
	Challenge string // the Challenge's name
	Name      string // the identifier: spec.dnsName, "*." in front for a wildcard
	Type      reports.Challenge
	Token     string
	Key       string // http-01: the key authorization; dns-01: the TXT value
	State     string
	Reason    string
	Solver    Solver
}

// Solver is what a Challenge's solver configuration (a copy of the
// Issuer's solver cert-manager picked) says about where the answer goes.
type Solver struct {
	// Provider is the solver's kind as cert-manager's API names it:
	// rfc2136, route53, cloudDNS, azureDNS, cloudflare, acmeDNS,
	// digitalocean, akamai, webhook; ingress or gatewayHTTPRoute for http-01.
	Provider string
	// Server is an rfc2136 solver's nameserver, the server cert-manager
	// sends its dynamic update to; invalid when the config names none or
	// not as an address.
	Server netip.AddrPort
	// Zone is the hosted zone the solver writes to when its config names
	// one (cloudDNS and azureDNS hostedZoneName); a route53 hostedZoneID is
	// an ID, kept in ZoneID, which cannot be compared with a zone name
	// without asking AWS.
	Zone, ZoneID string
	// IngressClass and IngressName are an ingress solver's class (class or
	// ingressClassName) and the existing Ingress it edits ("" when it
	// creates its own).
	IngressClass, IngressName string
	// Description is one line for people ("rfc2136 at 192.0.2.1:53").
	Description string
}

// DefaultRFC2136Port is the port cert-manager adds to an rfc2136
// nameserver given without one.
const DefaultRFC2136Port = 53

// CheckFor reads a Challenge: what to check and how its solver works.
func CheckFor(ch *acmev1.Challenge) Check {
	return Check{Namespace: ch.Namespace, Challenge: ch.Name, Name: DisplayName(ch), Type: challengeType(ch.Spec.Type),
		Token: ch.Spec.Token, Key: ch.Spec.Key, State: string(ch.Status.State), Reason: ch.Status.Reason,
		Solver: SolverOf(ch.Spec.Solver)}
}

// Open says whether the Challenge still waits for something the checks
// can explain: not valid, and not finished otherwise (an invalid
// Challenge is kept: its name is what failed).
func (c Check) Open() bool { return c.State != string(acmev1.Valid) }

// DisplayName is the identifier a Challenge validates, "*." in front for
// a wildcard (spec.dnsName holds the base name then).
func DisplayName(ch *acmev1.Challenge) string {
	if ch.Spec.Wildcard && !strings.HasPrefix(ch.Spec.DNSName, "*.") {
		return "*." + ch.Spec.DNSName
	}
	return ch.Spec.DNSName
}

func challengeType(t acmev1.ACMEChallengeType) reports.Challenge {
	switch t {
	case acmev1.ACMEChallengeTypeDNS01:
		return reports.DNS01
	case acmev1.ACMEChallengeTypeHTTP01:
		return reports.HTTP01
	}
	return reports.Challenge(strings.ToLower(string(t)))
}

// SolverOf reads a solver configuration.
func SolverOf(s acmev1.ACMEChallengeSolver) Solver {
	var out Solver
	switch {
	case s.DNS01 != nil:
		d := s.DNS01
		switch {
		case d.RFC2136 != nil:
			out.Provider = "rfc2136"
			out.Server = parseNameserver(d.RFC2136.Nameserver)
			out.Description = "rfc2136 at " + d.RFC2136.Nameserver
		case d.Route53 != nil:
			out.Provider, out.ZoneID = "route53", d.Route53.HostedZoneID
		case d.CloudDNS != nil:
			out.Provider, out.Zone = "cloudDNS", d.CloudDNS.HostedZoneName
		case d.AzureDNS != nil:
			out.Provider, out.Zone = "azureDNS", d.AzureDNS.HostedZoneName
		case d.Cloudflare != nil:
			out.Provider = "cloudflare"
		case d.AcmeDNS != nil:
			out.Provider = "acmeDNS"
		case d.DigitalOcean != nil:
			out.Provider = "digitalocean"
		case d.Akamai != nil:
			out.Provider = "akamai"
		case d.Webhook != nil:
			out.Provider = "webhook"
			out.Description = fmt.Sprintf("webhook %s/%s", d.Webhook.GroupName, d.Webhook.SolverName)
		}
		switch {
		case out.Description != "":
		case out.Zone != "":
			out.Description = fmt.Sprintf("%s, hosted zone %s", out.Provider, out.Zone)
		case out.ZoneID != "":
			out.Description = fmt.Sprintf("%s, hosted zone ID %s", out.Provider, out.ZoneID)
		default:
			out.Description = out.Provider
		}
	case s.HTTP01 != nil && s.HTTP01.Ingress != nil:
		in := s.HTTP01.Ingress
		out.Provider, out.IngressName = "ingress", in.Name
		switch {
		case in.IngressClassName != nil:
			out.IngressClass = *in.IngressClassName
		case in.Class != nil:
			out.IngressClass = *in.Class
		}
		out.Description = "ingress"
		if out.IngressClass != "" {
			out.Description += " class " + out.IngressClass
		}
		if out.IngressName != "" {
			out.Description += " (editing Ingress " + out.IngressName + ")"
		}
	case s.HTTP01 != nil && s.HTTP01.GatewayHTTPRoute != nil:
		out.Provider, out.Description = "gatewayHTTPRoute", "Gateway API HTTPRoute"
		var parents []string
		for _, p := range s.HTTP01.GatewayHTTPRoute.ParentRefs {
			parents = append(parents, string(p.Name))
		}
		if len(parents) > 0 {
			out.Description += " on " + strings.Join(parents, ", ")
		}
	}
	return out
}

// parseNameserver reads an rfc2136 nameserver as cert-manager accepts it:
// "host", "host:port" or "[v6]:port", port 53 when absent. Only addresses
// can be asked directly; a host name gives an invalid AddrPort.
func parseNameserver(s string) netip.AddrPort {
	host, port := s, DefaultRFC2136Port
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return netip.AddrPort{}
		}
		host, port = h, n
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(port))
}

// TXTAnswer is what one server answered for the challenge's TXT record.
type TXTAnswer struct {
	Host   string // the NS host name; "" for the solver's server
	Addr   netip.AddrPort
	Values []string // the TXT strings, when the answer was authoritative
	Answer string   // what it answered, for details
}

// has says whether the answer holds want.
func (a TXTAnswer) has(want string) bool { return slices.Contains(a.Values, want) }

func (a TXTAnswer) String() string {
	if a.Host == "" {
		return a.Addr.String()
	}
	return fmt.Sprintf("%s (%s)", strings.TrimSuffix(a.Host, "."), a.Addr.Addr())
}

// DNS01Facts is what the DNS says about a dns-01 Challenge's record:
// where it lives and what each server holds.
type DNS01Facts struct {
	Owner   string      // the name holding the TXT (CNAMEs followed)
	Zone    string      // the apex of Owner's zone: the zone cut
	Servers []TXTAnswer // every address of the zone's authoritative servers
	// Solver is the solver's own server's answer (rfc2136), nil when not
	// asked.
	Solver *TXTAnswer
}

// ExplainDNS01 says what the solver's configuration explains beyond the
// probes: the record written at an rfc2136 primary that the public
// servers lack (certmanager.record_not_replicated), or a hosted zone that
// is not the zone cut of the record (certmanager.wrong_zone).
func (c Check) ExplainDNS01(f DNS01Facts) []reports.Finding {
	if c.Type != reports.DNS01 || c.Key == "" {
		return nil
	}
	var out []reports.Finding
	if p := f.Solver; p != nil && p.has(c.Key) && len(f.Servers) > 0 {
		var lack, have []string
		for _, s := range f.Servers {
			if s.has(c.Key) {
				have = append(have, s.String())
			} else {
				lack = append(lack, s.String())
			}
		}
		if len(lack) > 0 {
			var answers []string
			for _, s := range f.Servers {
				answers = append(answers, fmt.Sprintf("%s: %s", s, s.Answer))
			}
			detail := fmt.Sprintf("present at the primary %s, missing at %s: zone transfer or NOTIFY is not reaching the secondaries\n"+
				"Challenge %s/%s writes %q to %s with RFC 2136; the servers of zone %s answered:\n%s",
				p.Addr, joinAnd(lack), c.Namespace, c.Challenge, c.Key, strings.TrimSuffix(f.Owner, "."), strings.TrimSuffix(f.Zone, "."), strings.Join(answers, "\n"))
			out = append(out, reports.New(reports.CodeCertManagerRecordNotReplicated, c.Name, detail).
				With("primary", p.Addr.String()).With("missing", lack).With("serving", have).With("challenge", c.Namespace+"/"+c.Challenge))
		}
	}
	if z := normZone(c.Solver.Zone); z != "" && f.Zone != "" && z != normZone(f.Zone) {
		detail := fmt.Sprintf("the %s solver of Challenge %s/%s writes to hosted zone %s, but %s belongs to zone %s (the zone cut): "+
			"resolvers and the CA never look for the record in %s",
			c.Solver.Provider, c.Namespace, c.Challenge, z, strings.TrimSuffix(f.Owner, "."), normZone(f.Zone), z)
		out = append(out, reports.New(reports.CodeCertManagerWrongZone, c.Name, detail).
			With("written_in", z).With("zone", normZone(f.Zone)).With("challenge", c.Namespace+"/"+c.Challenge))
	}
	return out
}

func normZone(z string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(z), ".")) }

// joinAnd lists items as "a", "a and b", "a, b and c".
func joinAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// AnnotateHTTP01 adds an ingress or Gateway solver to the http-01 findings
// of the Challenge's name that mean the solver's route does not answer:
// a 404 or another status (the route is missing), or another body (the
// path is answered by another backend).
func (c Check) AnnotateHTTP01(fs []reports.Finding) []reports.Finding {
	if c.Type != reports.HTTP01 || c.Solver.Provider == "" {
		return fs
	}
	out := slices.Clone(fs)
	for i, f := range out {
		if f.Name != c.Name {
			continue
		}
		var why string
		switch f.Code {
		case reports.CodeHTTP01BadStatus, reports.CodeHTTP01NotRouted:
			why = "the route for /.well-known/acme-challenge/" + c.Token + " is missing: the solver's " + c.Solver.Description +
				" does not carry it (is the class served by this controller? is the solver Ingress/HTTPRoute there?)"
		case reports.CodeHTTP01WrongBody:
			why = "the path /.well-known/acme-challenge/" + c.Token + " is answered by another backend than the solver's " +
				c.Solver.Description + " (another Ingress or a catch-all rule wins the route)"
		default:
			continue
		}
		out[i].Detail = strings.TrimRight(f.Detail, "\n") + "\ncert-manager (Challenge " + c.Namespace + "/" + c.Challenge + "): " + why
		out[i] = out[i].With("solver", c.Solver.Description)
	}
	return out
}
