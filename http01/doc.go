// Package http01 predicts what Let's Encrypt's validation authority (Boulder's
// VA) concludes for an HTTP-01 or TLS-ALPN-01 challenge, from one vantage.
//
// It emulates Boulder rather than approximating it: the first AAAA then the
// first A address, IPv6→IPv4 fallback only after a dial error (and, through a
// restart of the whole chain as Boulder does it, a "Redirect loop detected"
// when a redirect hop fails to dial), Boulder's redirect policy (301/302/307/308,
// http/https, the configured ports, IANA TLDs, 11 redirects followed, the 12th
// refused), status exactly 200, a 128-byte body limit, trailing-whitespace trim,
// and the problem type and detail text detailedError would produce. Each run
// returns the hop trace (Boulder's validation records), the ACME problem LE
// would return and FINDINGS.md findings that say why.
//
// The package never resolves names itself: the identifier's addresses come in
// the Request, redirect targets are resolved through the injected Resolver.
// Reads beyond what Boulder reads are a bounded diagnostic peek (≤ 4 KiB, ≤ 1 s)
// that never changes the verdict.
package http01
