package pebble

import (
	"fmt"
	"net"

	"github.com/acmediag/acmediag/testenv/pki"
)

// writeAPICerts creates a CA and a serving certificate for the hosts of the
// given listen addresses (plus localhost and 127.0.0.1) in dir and returns
// the CA file, certificate file and key file.
func writeAPICerts(dir string, addrs ...string) (caFile, certFile, keyFile string, err error) {
	ca, err := pki.NewCA(dir, "api-ca")
	if err != nil {
		return "", "", "", err
	}
	hosts := []string{"pebble"}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return "", "", "", fmt.Errorf("listen address %q: %w", a, err)
		}
		hosts = append(hosts, host)
	}
	certFile, keyFile, err = ca.Server("api-cert", hosts...)
	return ca.CertFile, certFile, keyFile, err
}
