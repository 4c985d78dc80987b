// Package tlscheck reads the certificates a name's servers really serve and
// says what is wrong with them: for each address it is given, it connects
// to the TLS port with SNI set to the name, completes a handshake without
// judging trust, and records the chain's facts — the leaf's validity,
// issuer, serial, names and whether they cover the name, key type, OCSP
// must-staple, whether the served chain is complete and whether it chains
// to the configured roots. From those facts it derives the tls.* findings
// of FINDINGS.md: tls.expiring (by the share of the lifetime left),
// tls.name_mismatch, tls.chain_incomplete, tls.untrusted,
// tls.handshake_failed per address, and tls.stale_backend when some
// addresses serve an older certificate than others. StaleBackends compares
// the same facts across vantages, so the daemon can find a stale backend
// that only some perspectives reach.
//
// It owns the handshake and the judgement of one served chain. It must not
// resolve names (the caller gives the addresses), import dnscheck, know
// about the CA's renewal window (probes/canary asks ARI; reports decides
// the renewal rule) or name CLI flags only in its texts.
//
// Every exchange is bounded: a deadline per address covering connect and
// handshake, a cap on the bytes read from the peer (a server sending a
// 1 MiB chain is cut off, not buffered), at most maxChain certificates
// examined and chains with issuer loops walked once. Addresses are
// inspected concurrently, so a server that never finishes its handshake
// costs its own deadline and delays nothing else.
package tlscheck
