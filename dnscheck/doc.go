// Package dnscheck establishes the DNS facts an ACME validation depends on,
// the way Let's Encrypt's resolvers would meet them and, beyond that, from
// every authoritative server address directly: the delegation from the
// root, each server's answers (RD=0, UDP then TCP on truncation), SOA serial
// consistency, A/AAAA addresses, the dns-01 TXT record and its CNAME chain,
// CAA with Boulder's semantics, and DNSSEC from the trust anchor down.
//
// Every check returns data: answers per server, and findings (reports.Finding)
// whose detail names the server, the address and what it answered. Nothing
// here knows about HTTP, Kubernetes or metrics.
package dnscheck
