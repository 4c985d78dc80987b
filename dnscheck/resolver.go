package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// resolverAnswer is a recursive resolver's answer, read the way Boulder's
// bdns client reads it.
type resolverAnswer struct {
	Resolver netip.AddrPort
	Resp     *Response
	// Records of the asked type at the end of any CNAME chain.
	Records []dns.RR
	CNAMEs  []*dns.CNAME
	// Problem is Boulder's text for a failed lookup ("" on NOERROR).
	Problem string
	EDE     *dns.EDNS0_EDE
}

// Failed reports whether the resolver could not give an answer (anything
// other than NOERROR; NXDOMAIN included, as in Boulder).
func (a *resolverAnswer) Failed() bool { return a.Problem != "" }

// resolve asks one recursive resolver, with RD=1 and DO=1, as the CA's
// validation does.
func (r *run) resolve(ctx context.Context, resolver netip.AddrPort, name string, qtype uint16) *resolverAnswer {
	resp := r.q.Query(ctx, resolver, name, qtype, QueryOptions{Recurse: true, Timeout: r.resolverTimeout})
	a := &resolverAnswer{Resolver: resolver, Resp: resp}
	host := strings.TrimSuffix(name, ".")
	if resp.Msg != nil {
		a.EDE = extendedError(resp.Msg)
		for _, rr := range resp.Msg.Answer {
			switch v := rr.(type) {
			case *dns.CNAME:
				a.CNAMEs = append(a.CNAMEs, v)
			default:
				if rr.Header().Rrtype == qtype {
					a.Records = append(a.Records, rr)
				}
			}
		}
	}
	if p := boulderDNSProblem(qtype, host, resp); p != "" {
		a.Problem = p
	}
	return a
}

// boulderDNSProblem renders a failed lookup as Boulder's bdns does
// ("DNS problem: NXDOMAIN looking up A for example.com - check that a DNS
// record exists for this domain"), or "" when the lookup succeeded.
func boulderDNSProblem(qtype uint16, host string, resp *Response) string {
	var detail, additional string
	var qe *QueryError
	switch {
	case resp.Msg != nil && resp.Msg.Rcode == dns.RcodeSuccess && resp.Err == nil:
		return ""
	case resp.Msg != nil:
		detail = dns.RcodeToString[resp.Msg.Rcode]
		switch resp.Msg.Rcode {
		case dns.RcodeNameError:
			additional = " - check that a DNS record exists for this domain"
		case dns.RcodeServerFailure:
			additional = " - the domain's nameservers may be malfunctioning"
		}
		if ede := extendedError(resp.Msg); ede != nil {
			summary := edeSummary[ede.InfoCode]
			if summary == "" {
				summary = fmt.Sprintf("Unknown Extended DNS Error code %d", ede.InfoCode)
			}
			s := fmt.Sprintf("DNS problem: looking up %s for %s: %s", dns.TypeToString[qtype], host, summary)
			if ede.ExtraText != "" {
				s += ": " + ede.ExtraText
			}
			return s
		}
	case errors.As(resp.Err, &qe) && qe.Kind == KindTimeout:
		detail = "query timed out"
	case errors.As(resp.Err, &qe) && qe.Kind == KindTruncated:
		detail = "response was truncated"
	case errors.As(resp.Err, &qe) && qe.Kind == KindNetwork:
		detail = "networking error"
	default:
		detail = "server failure at resolver"
	}
	return fmt.Sprintf("DNS problem: %s looking up %s for %s%s", detail, dns.TypeToString[qtype], host, additional)
}

func extendedError(m *dns.Msg) *dns.EDNS0_EDE {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok {
				return ede
			}
		}
	}
	return nil
}

// edeSummary is Boulder's wording of RFC 8914 codes: DNSSEC ones start
// with "DNSSEC:", so users can match what cert-manager shows them.
var edeSummary = map[uint16]string{
	dns.ExtendedErrorCodeOther:                      "Other",
	dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm: "DNSSEC: Unsupported DNSKEY Algorithm",
	dns.ExtendedErrorCodeUnsupportedDSDigestType:    "DNSSEC: Unsupported DS Digest Type",
	dns.ExtendedErrorCodeStaleAnswer:                "Stale Answer",
	dns.ExtendedErrorCodeForgedAnswer:               "Forged Answer",
	dns.ExtendedErrorCodeDNSSECIndeterminate:        "DNSSEC: Indeterminate",
	dns.ExtendedErrorCodeDNSBogus:                   "DNSSEC: Bogus",
	dns.ExtendedErrorCodeSignatureExpired:           "DNSSEC: Signature Expired",
	dns.ExtendedErrorCodeSignatureNotYetValid:       "DNSSEC: Signature Not Yet Valid",
	dns.ExtendedErrorCodeDNSKEYMissing:              "DNSSEC: DNSKEY Missing",
	dns.ExtendedErrorCodeRRSIGsMissing:              "DNSSEC: RRSIGs Missing",
	dns.ExtendedErrorCodeNoZoneKeyBitSet:            "DNSSEC: No Zone Key Bit Set",
	dns.ExtendedErrorCodeNSECMissing:                "DNSSEC: NSEC Missing",
	dns.ExtendedErrorCodeCachedError:                "Cached Error",
	dns.ExtendedErrorCodeNotReady:                   "Not Ready",
	dns.ExtendedErrorCodeBlocked:                    "Blocked",
	dns.ExtendedErrorCodeCensored:                   "Censored",
	dns.ExtendedErrorCodeFiltered:                   "Filtered",
	dns.ExtendedErrorCodeProhibited:                 "Prohibited",
	dns.ExtendedErrorCodeStaleNXDOMAINAnswer:        "Stale NXDOMAIN Answer",
	dns.ExtendedErrorCodeNotAuthoritative:           "Not Authoritative",
	dns.ExtendedErrorCodeNotSupported:               "Not Supported",
	dns.ExtendedErrorCodeNoReachableAuthority:       "No Reachable Authority",
	dns.ExtendedErrorCodeNetworkError:               "Network Error between Resolver and Authority",
	dns.ExtendedErrorCodeInvalidData:                "Invalid Data",
}
