package reports

import "fmt"

// Entry is the catalogue's word on one code: its usual severity, the one-line
// summary of what is wrong and the fix a user can apply.
type Entry struct {
	Code     Code
	Severity Severity
	Summary  string
	Fix      string
}

// Lookup returns the catalogue entry for code. An unknown code is a
// programming error inside acmediag; it is reported as an Error with a
// summary that says so rather than crashing a daemon.
func Lookup(code Code) Entry {
	if e, ok := catalogue[code]; ok {
		e.Code = code
		return e
	}
	return Entry{Code: code, Severity: Error, Summary: fmt.Sprintf("unknown finding code %q", code)}
}

// Catalogue lists every entry, in FINDINGS.md order.
func Catalogue() []Entry {
	out := make([]Entry, 0, len(catalogueOrder))
	for _, c := range catalogueOrder {
		out = append(out, Lookup(c))
	}
	return out
}

var catalogueOrder = []Code{
	CodeNameInvalid,
	CodeNameWildcardNeedsDNS01,
	CodeDNSNXDomain,
	CodeDNSServFail,
	CodeDNSTimeout,
	CodeDNSLameDelegation,
	CodeDNSNSUnreachable,
	CodeDNSSerialMismatch,
	CodeDNSDNSSECBogus,
	CodeDNSNoAddress,
	CodeDNSReservedAddress,
	CodeDNSTransport,
	CodeDNSSplitHorizon,
	CodeDNSNegativeTTLHigh,
	CodeDNS01TXTMissing,
	CodeDNS01TXTNotPropagated,
	CodeDNS01TXTWrongValue,
	CodeDNS01CNAMEDangling,
	CodeDNS01WrongZone,
	CodeDNS01DoubledLabel,
	CodeDNS01TooManyTXT,
	CodeDNS01ProviderError,
	CodeDNS01PropagationSlow,
	CodeCAAForbidden,
	CodeCAAIssueWildForbidden,
	CodeCAAAccountURIMismatch,
	CodeCAAValidationMethodsMismatch,
	CodeCAACriticalUnknown,
	CodeCAALookupFailed,
	CodeCAAMalformed,
	CodeHTTP01ConnectTimeout,
	CodeHTTP01ConnectionRefused,
	CodeHTTP01IPv6Unreachable,
	CodeHTTP01IPv6DifferentContent,
	CodeHTTP01InconsistentBackends,
	CodeHTTP01SlowResponse,
	CodeHTTP01ConnectionReset,
	CodeHTTP01BadStatus,
	CodeHTTP01NotRouted,
	CodeHTTP01WrongBody,
	CodeHTTP01WAFOrAuth,
	CodeHTTP01RedirectBadPort,
	CodeHTTP01RedirectBadScheme,
	CodeHTTP01RedirectLoop,
	CodeHTTP01TooManyRedirects,
	CodeHTTP01RedirectBadStatus,
	CodeHTTP01RedirectBadHost,
	CodeHTTP01RedirectTLSError,
	CodeHTTP01TLSOnHTTPPort,
	CodeHTTP01H2C,
	CodeTLSALPNUnreachable,
	CodeTLSALPNNoALPN,
	CodeTLSALPNWrongCertificate,
	CodeMPICQuorumFailed,
	CodeMPICPartial,
	CodeVantageSelfCheckOnly,
	CodeACMERateLimited,
	CodeACMEDirectoryUnreachable,
	CodeACMEOrderFailed,
	CodeRenewalFailed,
	CodeRenewalAtRisk,
	CodeRenewalOverdue,
	CodeRenewalWindowOpen,
	CodeRenewalARIEarly,
	CodeRenewalBackoff,
	CodeCertManagerSelfCheckBlocked,
	CodeIssuerNotReady,
	CodeCertManagerRecordNotReplicated,
	CodeCertManagerWrongZone,
	CodeTLSExpiring,
	CodeTLSNameMismatch,
	CodeTLSChainIncomplete,
	CodeTLSStaleBackend,
	CodeTLSUntrusted,
	CodeTLSHandshakeFailed,
	CodeProbeInternalError,
	CodeCertManagerCRDsMissing,
	CodeCertManagerForbidden,
}

// catalogue holds the texts for every code in FINDINGS.md. A summary says in
// plain words what is wrong; a fix says what a platform engineer changes, and
// where, in 1-3 sentences. The F-numbers of FINDINGS.md point at the research
// behind each text.
var catalogue = map[Code]Entry{
	CodeNameInvalid: {
		Severity: Fatal,
		Summary:  "The name is not one Let's Encrypt will issue for (syntax, public suffix, length, IP address or trailing dot)",
		Fix:      "Request a public DNS name in ASCII/punycode (A-label) form, without a trailing dot, with at most 10 labels and 253 bytes, ending in a public suffix (not .local, .internal or .lan) and not an IP address. Correct it in the Certificate's spec.dnsNames (or the Ingress tls.hosts) and let cert-manager issue again.",
	},
	CodeNameWildcardNeedsDNS01: {
		Severity: Fatal,
		Summary:  "A wildcard name can only be validated with the DNS-01 challenge",
		Fix:      "Give the Issuer a DNS-01 solver for this name (solvers[].dns01 with a selector that matches the wildcard), or list the explicit names instead of the wildcard. Let's Encrypt offers no HTTP-01 or TLS-ALPN-01 challenge for *.names.",
	},
	CodeDNSNXDomain: {
		Severity: Fatal,
		Summary:  "The name does not exist in public DNS (NXDOMAIN)",
		Fix:      "Create the A/AAAA record (for DNS-01, the _acme-challenge TXT record) in the public zone and check the name for typos. If the whole domain is missing, check at the registrar that it is registered, not expired and not on hold.",
	},
	CodeDNSServFail: {
		Severity: Fatal,
		Summary:  "Resolving the name fails with SERVFAIL",
		Fix:      "Query each authoritative server directly (dig +norec @SERVER NAME TYPE) and fix the one that fails; SERVFAIL usually means broken DNSSEC, a lame delegation or servers that reject the query type. For a signed zone, dnsviz.net shows which link is broken.",
	},
	CodeDNSTimeout: {
		Severity: Error,
		Summary:  "DNS queries for the name time out",
		Fix:      "Make every authoritative server answer on UDP and TCP port 53 from anywhere: check firewalls, response-rate limits and geo-restrictions on the servers, and remove NS records for servers that no longer exist.",
	},
	CodeDNSLameDelegation: {
		Severity: Error,
		Summary:  "The delegation is lame: a listed nameserver is not authoritative, or the parent and zone NS sets differ",
		Fix:      "Make the NS set at the registrar (the parent zone) match the NS records inside the zone, and make every listed server serve the zone authoritatively (NOERROR with the AA bit). Remove servers that answer REFUSED or without authority.",
	},
	CodeDNSNSUnreachable: {
		Severity: Warning,
		Summary:  "Some authoritative nameservers or their addresses do not answer",
		Fix:      "Fix or remove the silent servers named in the detail, on both IPv4 and IPv6 and on UDP and TCP port 53. Let's Encrypt's resolvers in other regions may pick them and time out.",
	},
	CodeDNSSerialMismatch: {
		Severity: Warning,
		Summary:  "The authoritative servers serve different versions of the zone (SOA serials differ)",
		Fix:      "Fix replication from the primary to the secondaries (NOTIFY, AXFR/IXFR, allow-transfer) so every server converges. Until then, wait for every server to have a change before asking the CA to validate.",
	},
	CodeDNSDNSSECBogus: {
		Severity: Fatal,
		Summary:  "DNSSEC validation fails for the name (bad signatures, keys or denial proofs)",
		Fix:      "Fix the DNSSEC problem named in the detail: re-sign the zone if RRSIGs expired, update the DS record at the registrar to match the zone's current DNSKEY, or remove the DS record if the zone is no longer signed. dnsviz.net shows the broken link.",
	},
	CodeDNSNoAddress: {
		Severity: Fatal,
		Summary:  "The name has neither an A nor an AAAA record",
		Fix:      "Publish an A and/or AAAA record that points to the load balancer or ingress serving ports 80/443 for this name, or validate with DNS-01 instead.",
	},
	CodeDNSReservedAddress: {
		Severity: Fatal,
		Summary:  "The name resolves to a private or reserved address the CA cannot reach",
		Fix:      "Publish the public address of the load balancer or ingress in public DNS and keep private addresses in an internal view only. For hosts that are only reachable internally, use DNS-01.",
	},
	CodeDNSTransport: {
		Severity: Error,
		Summary:  "The nameservers mishandle DNS transport (TCP fallback, EDNS or 0x20 letter case)",
		Fix:      "Allow TCP port 53 to every authoritative server, make it answer EDNS(0) queries correctly and echo the query name's letter case exactly (0x20). Answers over 1232 bytes need working TCP, so also trim large TXT, CAA or DNSSEC answers.",
	},
	CodeDNSSplitHorizon: {
		Severity: Warning,
		Summary:  "A vantage's resolver sees different answers than public DNS",
		Fix:      "Point cert-manager's self-check at public resolvers: `--dns01-recursive-nameservers=1.1.1.1:53,8.8.8.8:53 --dns01-recursive-nameservers-only` for DNS-01, `--acme-http01-solver-nameservers` for HTTP-01. Then make sure the public records are the ones Let's Encrypt should see.",
	},
	CodeDNSNegativeTTLHigh: {
		Severity: Warning,
		Summary:  "The zone's negative-caching TTL is long enough to pin a stale NXDOMAIN",
		Fix:      "Lower the SOA minimum (negative TTL) of the zone that holds _acme-challenge to a few minutes, e.g. 300 seconds, so a resolver that cached NXDOMAIN before the record existed asks again soon.",
	},
	CodeDNS01TXTMissing: {
		Severity: Error,
		Summary:  "There is no TXT record at _acme-challenge for the name",
		Fix:      "Check that the DNS-01 solver created the record (the Challenge's events show PresentError otherwise) in the zone authoritative for _acme-challenge.NAME. If _acme-challenge is a CNAME, the TXT record must exist at the CNAME's target.",
	},
	CodeDNS01TXTNotPropagated: {
		Severity: Error,
		Summary:  "Some authoritative servers do not serve the challenge TXT value yet",
		Fix:      "Fix replication to the servers named in the detail, or wait until they serve the value before validating. Keep cert-manager's default self-check, which asks every authoritative server, rather than `--dns01-recursive-nameservers-only`, which can pass while a server still lags.",
	},
	CodeDNS01TXTWrongValue: {
		Severity: Error,
		Summary:  "_acme-challenge has TXT records, but not the expected value",
		Fix:      "Delete stale values and make sure the DNS provider can hold several TXT values at one name (a wildcard and its apex need two at once). If the value belongs to another ACME account key, the record was written by a different client or account.",
	},
	CodeDNS01CNAMEDangling: {
		Severity: Fatal,
		Summary:  "_acme-challenge is a CNAME whose target does not exist or cannot be resolved",
		Fix:      "Create the CNAME target (for acme-dns, register the account) or fix the target zone's nameservers. With the CNAME in place, set `cnameStrategy: Follow` on the cert-manager DNS-01 solver so it writes the TXT record at the target.",
	},
	CodeDNS01WrongZone: {
		Severity: Error,
		Summary:  "The TXT record was written into a parent zone above a zone cut, where resolvers never look",
		Fix:      "Write the record in the zone that is authoritative for _acme-challenge.NAME (the detail names it): configure the solver for that zone, e.g. the sub-zone's Route53 hostedZoneID, and give its credentials access to it.",
	},
	CodeDNS01DoubledLabel: {
		Severity: Warning,
		Summary:  "The challenge TXT record exists under a doubled name such as _acme-challenge.example.com.example.com",
		Fix:      "Recreate the record with a name relative to the zone (`_acme-challenge`) or fully qualified with a trailing dot, and delete the doubled one.",
	},
	CodeDNS01TooManyTXT: {
		Severity: Warning,
		Summary:  "_acme-challenge holds so many TXT records that the answer may exceed UDP size limits",
		Fix:      "Delete stale challenge values and make sure the client's cleanup step runs, so the answer stays under 1232 bytes; keep TCP port 53 open on the authoritative servers.",
	},
	CodeDNS01ProviderError: {
		Severity: Error,
		Summary:  "The DNS provider's API refused to create the challenge record",
		Fix:      "Fix the credentials, permissions or zone named in the error: the Secret the solver references (in the Certificate's namespace for an Issuer, in cert-manager's namespace for a ClusterIssuer), the API token's zone scope and the zone ID.",
	},
	CodeDNS01PropagationSlow: {
		Severity: Warning,
		Summary:  "The TXT record takes longer to reach every authoritative server than the issuer waits",
		Fix:      "Make the client wait until every authoritative server has the value: keep cert-manager's self-check on, or raise `waitInsteadOfSelfCheck` or another client's propagation delay above the measured time. Ask the DNS provider why replication is slow.",
	},
	CodeCAAForbidden: {
		Severity: Fatal,
		Summary:  "CAA records forbid Let's Encrypt from issuing for this name",
		Fix:      "Add `0 issue \"letsencrypt.org\"` to the CAA set that applies (the zone named in the detail), next to any other CA's records, or publish a CAA set at the name itself to override its parent. The value must be exactly letsencrypt.org, without a trailing dot.",
	},
	CodeCAAIssueWildForbidden: {
		Severity: Fatal,
		Summary:  "issuewild CAA records forbid Let's Encrypt from issuing this wildcard",
		Fix:      "Add `0 issuewild \"letsencrypt.org\"` where the issuewild records are, or remove the issuewild records so the issue records apply to wildcards too.",
	},
	CodeCAAAccountURIMismatch: {
		Severity: Fatal,
		Summary:  "The CAA accounturi parameter does not match the ACME account in use",
		Fix:      "Set accounturi to this ACME account's URL (staging and production accounts differ, and a new cert-manager account key Secret means a new account), or add one CAA record per account. Use at most one accounturi per record.",
	},
	CodeCAAValidationMethodsMismatch: {
		Severity: Fatal,
		Summary:  "The CAA validationmethods parameter excludes the challenge type in use",
		Fix:      "Add the challenge type you use (http-01, dns-01 or tls-alpn-01; lower case, comma-separated, no spaces) to validationmethods, or switch to a challenge type it already allows.",
	},
	CodeCAACriticalUnknown: {
		Severity: Fatal,
		Summary:  "A CAA record has an unknown tag marked critical, which forbids all issuance",
		Fix:      "Set the record's flag to 0 or remove the unknown tag; Let's Encrypt treats flag 1 as critical, not only 128.",
	},
	CodeCAALookupFailed: {
		Severity: Fatal,
		Summary:  "The CAA lookup fails, and the CA treats a failed lookup as a refusal",
		Fix:      "Make the authoritative servers of every label, up to the TLD, answer CAA (type 257) queries with NOERROR (an empty answer is fine) instead of SERVFAIL, NOTIMP, REFUSED or silence. Check firewalls that drop unknown query types and DNSSEC proofs for empty answers.",
	},
	CodeCAAMalformed: {
		Severity: Warning,
		Summary:  "A CAA record is malformed, so the CA ignores it",
		Fix:      "Rewrite the record in RFC 8659 syntax, e.g. `0 issue \"letsencrypt.org; validationmethods=dns-01\"`. An ignored record authorizes no one, so issuance fails if no other record allows Let's Encrypt.",
	},
	CodeHTTP01ConnectTimeout: {
		Severity: Error,
		Summary:  "Connections to port 80 time out (likely a firewall)",
		Fix:      "Allow inbound TCP port 80 from every source to the addresses in the detail (security group, firewall, load-balancer listener); Let's Encrypt publishes no list of validation IPs, so an allowlist cannot work. Otherwise use DNS-01.",
	},
	CodeHTTP01ConnectionRefused: {
		Severity: Error,
		Summary:  "Connections to port 80 are refused",
		Fix:      "Make the ingress or load balancer listen on port 80 on every address the name resolves to, for the address family in the detail, or use DNS-01.",
	},
	CodeHTTP01IPv6Unreachable: {
		Severity: Error,
		Summary:  "Port 80 is unreachable over IPv6 although the name has an AAAA record",
		Fix:      "Make the server listen on [::]:80 (and [::]:443 when redirecting to HTTPS) and let IPv6 through the firewall, or remove the AAAA record. Let's Encrypt tries IPv6 first and retries a request whose IPv6 connection fails on the first IPv4 address, but clients and other CAs that do not fall back fail, and a slow IPv6 timeout eats into the validation's time.",
	},
	CodeHTTP01IPv6DifferentContent: {
		Severity: Error,
		Summary:  "The IPv6 and IPv4 addresses serve different content for the challenge",
		Fix:      "Point the AAAA record at the same ingress as the A record, or remove it. Let's Encrypt prefers IPv6 and does not fall back to IPv4 when the IPv6 server answers.",
	},
	CodeHTTP01InconsistentBackends: {
		Severity: Error,
		Summary:  "Not every address or backend serves the challenge token",
		Fix:      "Make every address in DNS and every backend behind the load balancer route /.well-known/acme-challenge/ to the same solver (or share the challenge files), or use DNS-01. Validation may hit any of them.",
	},
	CodeHTTP01SlowResponse: {
		Severity: Warning,
		Summary:  "The server answers the challenge request slowly",
		Fix:      "Make the challenge path answer within a second or two: look for an overloaded origin, a blocking middleware or a stateful middlebox in the path. Let's Encrypt gives up after about 10 seconds.",
	},
	CodeHTTP01ConnectionReset: {
		Severity: Error,
		Summary:  "The connection is reset after the request is sent (firewall, IPS or WAF)",
		Fix:      "Allow the challenge path through the device that resets the connection, e.g. permit the `acme-protocol` App-ID on a Palo Alto firewall or add an IPS exception for /.well-known/acme-challenge/.",
	},
	CodeHTTP01BadStatus: {
		Severity: Error,
		Summary:  "The challenge URL does not return HTTP 200",
		Fix:      "Make http://NAME/.well-known/acme-challenge/TOKEN return 200 with the key authorization: the detail shows the status and which server answered; route that path to the ACME solver.",
	},
	CodeHTTP01NotRouted: {
		Severity: Error,
		Summary:  "The challenge path is not routed to the ACME solver",
		Fix:      "Set the solver's ingress class to the controller that serves this host (`solvers[].http01.ingress.ingressClassName`, or `class` for older controllers) and make sure no other Ingress or route catches /.well-known/acme-challenge/ first.",
	},
	CodeHTTP01WrongBody: {
		Severity: Error,
		Summary:  "The challenge URL returns something other than the key authorization",
		Fix:      "Serve the challenge directory before the application's catch-all route and return the file unmodified as text/plain (under 128 bytes, no BOM or leading whitespace). If the value differs, check that the token belongs to the current ACME account key.",
	},
	CodeHTTP01WAFOrAuth: {
		Severity: Warning,
		Summary:  "Authentication, a WAF or a CDN guards the challenge path",
		Fix:      "Exempt /.well-known/acme-challenge/ from authentication, bot protection and geo rules (for Cloudflare, a WAF skip rule or DNS-only mode), or use DNS-01.",
	},
	CodeHTTP01RedirectBadPort: {
		Severity: Error,
		Summary:  "The challenge is redirected to a port other than 80 or 443",
		Fix:      "Redirect to https://NAME/ without an explicit port (443), or serve the challenge directly on port 80.",
	},
	CodeHTTP01RedirectBadScheme: {
		Severity: Error,
		Summary:  "The challenge is redirected to a scheme other than http or https",
		Fix:      "Redirect only to http:// or https:// URLs, or exempt /.well-known/acme-challenge/ from the redirect.",
	},
	CodeHTTP01RedirectLoop: {
		Severity: Error,
		Summary:  "The challenge request is redirected in a loop",
		Fix:      "Remove one of the redirects, often a CDN's \"always use HTTPS\" combined with an origin redirect back to HTTP, or exempt /.well-known/acme-challenge/ from redirects.",
	},
	CodeHTTP01TooManyRedirects: {
		Severity: Error,
		Summary:  "The challenge request is redirected more than 10 times",
		Fix:      "Shorten the redirect chain to a few hops, ideally none for /.well-known/acme-challenge/.",
	},
	CodeHTTP01RedirectBadStatus: {
		Severity: Error,
		Summary:  "A redirect uses a status other than 301, 302, 307 or 308",
		Fix:      "Use 301, 302, 307 or 308 for redirects on the challenge path; Let's Encrypt rejects 303 and every other status.",
	},
	CodeHTTP01RedirectBadHost: {
		Severity: Error,
		Summary:  "The challenge is redirected to an IP address or a host outside the public DNS",
		Fix:      "Redirect to a host name that ends in a public TLD (not an IP address, not .local or .internal), and check the target for a missing '/' after the host name.",
	},
	CodeHTTP01RedirectTLSError: {
		Severity: Error,
		Summary:  "The HTTPS redirect target fails the TLS handshake",
		Fix:      "Serve any certificate for the name on port 443 with TLS 1.2 or newer (Let's Encrypt does not verify it, so a self-signed one works; cert-manager's `cert-manager.io/issue-temporary-certificate: \"true\"` annotation provides one), or do not redirect the challenge path.",
	},
	CodeHTTP01TLSOnHTTPPort: {
		Severity: Error,
		Summary:  "Port 80 speaks TLS instead of plain HTTP",
		Fix:      "Serve plain HTTP on port 80 (fix the listener or the load balancer's protocol setting); redirect to HTTPS from there if you want.",
	},
	CodeHTTP01H2C: {
		Severity: Error,
		Summary:  "Port 80 speaks HTTP/2 without TLS (h2c)",
		Fix:      "Serve HTTP/1.1 on port 80; Let's Encrypt's validation client does not speak h2c.",
	},
	CodeTLSALPNUnreachable: {
		Severity: Error,
		Summary:  "Port 443 is unreachable or does not speak TLS",
		Fix:      "Open TCP port 443 to every source and terminate TLS there, or use HTTP-01 or DNS-01 instead.",
	},
	CodeTLSALPNNoALPN: {
		Severity: Error,
		Summary:  "The server on port 443 does not negotiate the acme-tls/1 protocol",
		Fix:      "Pass TLS for ALPN acme-tls/1 through to the ACME responder (layer-4 pass-through at the proxy or CDN), or use another challenge type; cert-manager does not support TLS-ALPN-01.",
	},
	CodeTLSALPNWrongCertificate: {
		Severity: Error,
		Summary:  "The certificate served for acme-tls/1 is not the challenge certificate",
		Fix:      "Route SNI=NAME with ALPN acme-tls/1 to the responder so it serves the challenge certificate (one SAN for the name, critical acmeIdentifier extension with the current key authorization) instead of a default certificate.",
	},
	CodeMPICQuorumFailed: {
		Severity: Fatal,
		Summary:  "Too many vantage points fail for Let's Encrypt's multi-perspective quorum",
		Fix:      "Make the name reachable from everywhere: remove geo-blocking, country or IP allowlists and blocks of cloud ranges on ports 80/443 and DNS. Let's Encrypt validates from several regions in at least two RIRs and publishes no IP list.",
	},
	CodeMPICPartial: {
		Severity: Warning,
		Summary:  "Some vantage points fail, but the quorum still holds",
		Fix:      "Fix the failing vantage points named in the other findings: one more failing region can make validation fail, and the regions Let's Encrypt uses can change at any time.",
	},
	CodeVantageSelfCheckOnly: {
		Severity: Warning,
		Summary:  "Only in-cluster vantages fail while external ones pass (hairpin NAT or PROXY protocol)",
		Fix:      "Let the cluster reach its own public address: enable the load balancer's hairpin option (e.g. DigitalOcean's `service.beta.kubernetes.io/do-loadbalancer-hostname` annotation) or disable PROXY protocol for in-cluster traffic. Otherwise skip cert-manager's self-check with the solver's `waitInsteadOfSelfCheck` (v1.21+).",
	},
	CodeACMERateLimited: {
		Severity: Error,
		Summary:  "The ACME server rate-limits this account or name",
		Fix:      "Wait until the retry-after time in the detail and stop what causes the repeats: fix the validation failure first, keep certificate Secrets across redeploys and test against the staging directory.",
	},
	CodeACMEDirectoryUnreachable: {
		Severity: Error,
		Summary:  "The ACME directory cannot be reached or returns errors",
		Fix:      "Check egress from the cluster to the directory URL (proxy, firewall, DNS) and the CA's status page (letsencrypt.status.io for Let's Encrypt); if the CA is degraded, wait.",
	},
	CodeACMEOrderFailed: {
		Severity: Error,
		Summary:  "A test order at the ACME server failed",
		Fix:      "Read the CA's problem in the detail; the other findings for this name usually name the cause. Fix it before the real renewal runs.",
	},
	CodeRenewalFailed: {
		Severity: Error,
		Summary:  "A certificate renewal attempt failed",
		Fix:      "Fix the root-cause finding named in the detail, then retry now with `cmctl renew` instead of waiting out cert-manager's backoff.",
	},
	CodeRenewalAtRisk: {
		Severity: Error,
		Summary:  "Renewal is due soon and the challenge path is failing now",
		Fix:      "Fix the failing challenge findings for this name before the renewal window opens; every failed attempt adds cert-manager backoff (1 h, doubling up to 32 h) before the next one.",
	},
	CodeRenewalOverdue: {
		Severity: Error,
		Summary:  "The renewal time has passed and no new certificate has been issued",
		Fix:      "Run `cmctl status certificate NAME` to see where issuance stops, fix the cause shown by the other findings, then `cmctl renew NAME` and watch the expiry date.",
	},
	CodeRenewalWindowOpen: {
		Severity: Info,
		Summary:  "The renewal window is open now",
		Fix:      "Nothing to do while the challenge path passes: the client should renew within the window. If it does not, check that it runs and reads the window (cert-manager uses its own `renewBefore`, not the CA's ARI window).",
	},
	CodeRenewalARIEarly: {
		Severity: Warning,
		Summary:  "The CA asks for renewal earlier than usual (ARI): an incident or a revocation",
		Fix:      "Read the CA's explanation at the URL in the evidence and renew within the window it gives: `cmctl renew NAMESPACE/NAME` for cert-manager, which does not read ARI, or lower `renewBefore` so its own schedule falls inside the window.",
	},
	CodeRenewalBackoff: {
		Severity: Warning,
		Summary:  "cert-manager is backing off after failed issuance attempts",
		Fix:      "Fix the cause, then run `cmctl renew NAME` to retry now instead of waiting for the next attempt (backoff starts at 1 h and doubles up to 32 h).",
	},
	CodeCertManagerSelfCheckBlocked: {
		Severity: Error,
		Summary:  "The Challenge is stuck in cert-manager's self-check while external vantages pass",
		Fix:      "Make the self-check see what the CA sees: `--dns01-recursive-nameservers=1.1.1.1:53 --dns01-recursive-nameservers-only` for split-horizon DNS, the load balancer's hairpin option or no PROXY protocol for HTTP-01, or `waitInsteadOfSelfCheck` on the solver (cert-manager v1.21+).",
	},
	CodeIssuerNotReady: {
		Severity: Error,
		Summary:  "The Issuer or ClusterIssuer is not Ready",
		Fix:      "Read the Ready condition's message (`kubectl describe issuer` or `clusterissuer`); usually the ACME account key Secret, the directory URL or the email is wrong, or the directory is unreachable.",
	},
	CodeCertManagerRecordNotReplicated: {
		Severity: Error,
		Summary:  "The solver's DNS server has the challenge record, the public authoritative servers do not",
		Fix:      "Fix replication from the server the solver writes to (often a hidden primary) to the servers named in the detail: allow zone transfers to them and send NOTIFY, or point the solver at a server in the NS set. The CA asks only the public servers.",
	},
	CodeCertManagerWrongZone: {
		Severity: Error,
		Summary:  "The solver wrote the challenge record to a hosted zone that does not serve _acme-challenge",
		Fix:      "Point the solver at the hosted zone named in the detail (the zone cut of `_acme-challenge.NAME`): set `hostedZoneID` or the provider's zone selector, or delegate the record with a CNAME into the zone the solver manages.",
	},
	CodeCertManagerCRDsMissing: {
		Severity: Warning,
		Summary:  "cert-manager's CRDs are not installed: no Certificate can be watched",
		Fix:      "Install cert-manager (its CRDs: `kubectl apply -f cert-manager.crds.yaml` or the chart with `crds.enabled=true`), or point `kube.kubeconfig` at the cluster that runs it. The daemon keeps probing its YAML targets and starts watching when the CRDs appear.",
	},
	CodeCertManagerForbidden: {
		Severity: Error,
		Summary:  "acmediag's ServiceAccount may not do a call the cluster watch needs",
		Fix:      "Bind the chart's ClusterRole (deploy/helm/acmediag/files/rbac-rules.yaml) to the daemon's ServiceAccount, or add the verb on the resource named in the detail to the role you bound; `kubectl auth can-i VERB RESOURCE --as system:serviceaccount:NS:NAME` checks it.",
	},
	CodeTLSExpiring: {
		Severity: Warning,
		Summary:  "The served certificate is near or past its expiry",
		Fix:      "Renew now and check why the renewal has not happened: the other findings for this name name a broken challenge path, and `cmctl status certificate` shows cert-manager's side. A certificate past expiry breaks every client.",
	},
	CodeTLSNameMismatch: {
		Severity: Error,
		Summary:  "The served certificate does not cover the name",
		Fix:      "Serve the certificate issued for this name at every address: check the ingress or load balancer's TLS secret for the host and its SNI routing, and that the Certificate's `dnsNames` include the name.",
	},
	CodeTLSChainIncomplete: {
		Severity: Warning,
		Summary:  "The server sends the leaf without the intermediate certificates",
		Fix:      "Serve the full chain (the leaf then its intermediates, as the CA delivered it): use the `tls.crt` cert-manager writes, which holds the chain, not the leaf alone. Some clients cannot fetch missing intermediates.",
	},
	CodeTLSStaleBackend: {
		Severity: Error,
		Summary:  "Some addresses or vantages are served an older certificate than the others",
		Fix:      "Reload or roll the backends named in the detail so that they pick up the renewed certificate (a pod or node that did not reload its secret, or a second load balancer). They will break when the old certificate expires.",
	},
	CodeTLSUntrusted: {
		Severity: Warning,
		Summary:  "The served certificate does not chain to a trusted root",
		Fix:      "Serve a certificate from the public CA (a staging or self-signed one is a leftover from testing), or set the roots to check against with `--tls-roots` or `tls.roots` for a private CA.",
	},
	CodeTLSHandshakeFailed: {
		Severity: Error,
		Summary:  "No TLS handshake on port 443 at an address",
		Fix:      "Make port 443 answer TLS at every address named in the detail: check the load balancer's listener, the firewall and that the address still belongs to this service.",
	},
	CodeProbeInternalError: {
		Severity: Error,
		Summary:  "acmediag failed inside a probe run and could not judge the name",
		Fix:      "Report it with the log line that names the probe and the name (it holds the stack): this is a bug in acmediag, not in your setup. The other probes keep running.",
	},
}
