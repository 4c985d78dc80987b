// Package boulderdiff is a differential test: it runs HTTP-01 and
// TLS-ALPN-01 validations through Let's Encrypt's Boulder VA and through
// acmediag's http01 package against the same loopback servers and asserts
// that both reach the same verdict and problem.
package boulderdiff
