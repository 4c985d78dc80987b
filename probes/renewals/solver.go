package renewals

import (
	"fmt"
	"slices"
	"strings"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/controller/acmeorders/selectors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/acmediag/acmediag/reports"
)

// matchCounts is how specifically one solver's selector matches a name,
// as cert-manager counts it.
type matchCounts struct{ names, zones, labels int }

// better is cert-manager's precedence between two matching selectors
// (pkg/util/solverpicker): a dnsNames match beats none (several count as
// one), then more matching dnsZones labels, then more matching labels;
// a tie keeps the solver listed first.
func better(n, o matchCounts) bool {
	if (n.names > 0) != (o.names > 0) {
		return n.names > 0
	}
	if n.zones != o.zones {
		return n.zones > o.zones
	}
	return n.labels > o.labels
}

// pickSolver is the solver cert-manager would pick for name (a wildcard as
// "*.example.com") among solvers, for an Order labelled like the
// Certificate (cert-manager copies the Certificate's labels to its
// requests and orders). The CA offers dns-01 only for a wildcard, http-01
// and dns-01 otherwise (cert-manager has no tls-alpn-01 solver). The
// selectors' matching is cert-manager's own code.
func pickSolver(name string, orderLabels map[string]string, solvers []cmacme.ACMEChallengeSolver) (*cmacme.ACMEChallengeSolver, reports.Challenge) {
	wildcard := strings.HasPrefix(name, "*.")
	meta := metav1.ObjectMeta{Labels: orderLabels}
	var picked *cmacme.ACMEChallengeSolver
	var counts matchCounts
	for i := range solvers {
		s := &solvers[i]
		if s.DNS01 == nil && (s.HTTP01 == nil || wildcard) {
			continue // the authorization offers no challenge this solver answers
		}
		if s.Selector == nil {
			// Matches everything, least specifically: only when nothing is
			// picked yet.
			if picked == nil {
				picked = s
			}
			continue
		}
		okL, nL := selectors.Labels(*s.Selector).Matches(meta, name)
		okN, nN := selectors.DNSNames(*s.Selector).Matches(meta, name)
		okZ, nZ := selectors.DNSZones(*s.Selector).Matches(meta, name)
		if !okL || !okN || !okZ {
			continue
		}
		c := matchCounts{names: nN, zones: nZ, labels: nL}
		if picked == nil || better(c, counts) {
			picked, counts = s, c
		}
	}
	if picked == nil {
		return nil, reports.DefaultChallenge(name)
	}
	// An ACME authorization lists http-01 before dns-01 (Let's Encrypt,
	// Pebble): a solver with both answers http-01 unless the name is a
	// wildcard.
	if picked.HTTP01 != nil && !wildcard {
		return picked, reports.HTTP01
	}
	return picked, reports.DNS01
}

// describeSolver says which solver it is, for the target and the Events.
func describeSolver(s *cmacme.ACMEChallengeSolver, ch reports.Challenge) string {
	if s == nil {
		return ""
	}
	var how string
	switch {
	case ch == reports.DNS01 && s.DNS01 != nil:
		how = "dns01 (" + dnsProvider(s.DNS01) + ")"
	case s.HTTP01 != nil && s.HTTP01.Ingress != nil:
		in := s.HTTP01.Ingress
		switch {
		case in.IngressClassName != nil:
			how = "http01 (ingress class " + *in.IngressClassName + ")"
		case in.Class != nil:
			how = "http01 (ingress class " + *in.Class + ")"
		case in.Name != "":
			how = "http01 (ingress " + in.Name + ")"
		default:
			how = "http01 (ingress)"
		}
	case s.HTTP01 != nil && s.HTTP01.GatewayHTTPRoute != nil:
		how = "http01 (gateway HTTPRoute)"
	default:
		how = string(ch)
	}
	if sel := s.Selector; sel != nil {
		var parts []string
		if len(sel.DNSNames) > 0 {
			parts = append(parts, fmt.Sprintf("dnsNames %v", sel.DNSNames))
		}
		if len(sel.DNSZones) > 0 {
			parts = append(parts, fmt.Sprintf("dnsZones %v", sel.DNSZones))
		}
		if len(sel.MatchLabels) > 0 {
			keys := make([]string, 0, len(sel.MatchLabels))
			for k, v := range sel.MatchLabels {
				keys = append(keys, k+"="+v)
			}
			slices.Sort(keys)
			parts = append(parts, fmt.Sprintf("matchLabels %v", keys))
		}
		if len(parts) > 0 {
			how += ", selector " + strings.Join(parts, " ")
		}
	}
	return how
}

func dnsProvider(d *cmacme.ACMEChallengeSolverDNS01) string {
	switch {
	case d.RFC2136 != nil:
		return "rfc2136 at " + d.RFC2136.Nameserver
	case d.Route53 != nil:
		return "route53"
	case d.Cloudflare != nil:
		return "cloudflare"
	case d.CloudDNS != nil:
		return "clouddns"
	case d.AzureDNS != nil:
		return "azuredns"
	case d.DigitalOcean != nil:
		return "digitalocean"
	case d.AcmeDNS != nil:
		return "acmedns"
	case d.Akamai != nil:
		return "akamai"
	case d.Webhook != nil:
		return "webhook " + d.Webhook.SolverName
	}
	return "dns01"
}

// issuerKey names a Certificate's issuer: "ClusterIssuer/NAME" or
// "Issuer/NAMESPACE/NAME"; external issuers keep their group.
func issuerKey(crt *cmapi.Certificate) string {
	ref := crt.Spec.IssuerRef
	if ref.Group != "" && ref.Group != "cert-manager.io" {
		return ref.Kind + "." + ref.Group + "/" + crt.Namespace + "/" + ref.Name
	}
	if ref.Kind == cmapi.ClusterIssuerKind {
		return cmapi.ClusterIssuerKind + "/" + ref.Name
	}
	return cmapi.IssuerKind + "/" + crt.Namespace + "/" + ref.Name
}

// certNames are the names a Certificate asks for: its dnsNames (an ACME
// request whose common name is not among them fails, so it adds none).
func certNames(crt *cmapi.Certificate) []string {
	out := make([]string, 0, len(crt.Spec.DNSNames))
	for _, n := range crt.Spec.DNSNames {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
