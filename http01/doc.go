// Package http01 predicts what Let's Encrypt's validation authority (Boulder's
// VA, pinned at v0.20261110.0) concludes for an HTTP-01 or TLS-ALPN-01
// challenge, from one vantage.
//
// It emulates Boulder rather than approximating it: the first AAAA else the
// first A address for every request, a request whose IPv6 dial fails retried
// once on its record's first IPv4 address (redirect targets included), at
// most 10 requests in all ("Too many hops"), Boulder's redirect policy
// (301/302/307/308 with a Location, http/https, the configured ports, IANA
// TLDs, no loops, paths ≤ 2000 bytes; a redirect target that does not
// resolve is a dns problem), other 3xx refused, status exactly 200, a body
// of at most 128 bytes (core.ErrOnLimitReader), trailing-whitespace trim,
// and the problem type and detail text detailedError would produce. Each run
// returns the hop trace (Boulder's validation records), the ACME problem LE
// would return and FINDINGS.md findings that say why.
//
// Requests go through a small single-request HTTP/1.1 client (client.go)
// that writes the bytes net/http's transport writes, parses with
// http.ReadResponse and returns the errors http.Client would, without
// net/http's per-request transport and goroutines.
//
// The package never resolves names itself: the identifier's addresses come in
// the Request, redirect targets are resolved through the injected Resolver.
// Reads beyond what Boulder reads are a bounded diagnostic peek (≤ 4 KiB, ≤ 1 s)
// that never changes the verdict.
package http01
