package agent

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// FuzzRequest feeds request bodies, as any holder of a client certificate
// may send them, to the agent's decoding and validation (not to a probe
// run): never a panic; a refusal is a 4xx with a message; an accepted
// request names a known kind and a DNS name, and nothing to connect to.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		`{"kind":"dns","target":{"name":"www.example.com"}}`,
		`{"kind":"http-01","target":{"name":"www.example.com","challenge":"http-01","token":"tok","key_auth":"tok.thumb"}}`,
		`{"kind":"dns","target":{"name":"*.example.com","challenge":"dns-01","expect_txt":"v"}}`,
		`{"kind":"dns","target":{"name":"www.example.com","port":8080}}`,
		`{"kind":"dns","target":{"name":"1.2.3.4"}}`,
		`{"kind":"acme","target":{"name":"a.com"}}`,
		`{"kind":"dns","target":{"name":"a.com"},"resolver":"8.8.8.8"}`,
		`{"kind":"dns"}{"kind":"dns"}`,
		`[1,2,3]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	cfg := agentConfig(f, startDeadDNS(f), 100*time.Millisecond)
	h := NewHandler(cfg)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, status, err := decodeRequest(bytes.NewReader(body), DefaultMaxBody)
		if err == nil {
			status, err = h.validate(&req)
		}
		if err != nil {
			if status < 400 || status > 499 || err.Error() == "" {
				t.Errorf("refused with status %d: %v", status, err)
			}
			return
		}
		if req.Target.Name == "" || req.Kind == "" {
			t.Errorf("accepted %+v", req)
		}
		if status != 0 && status != http.StatusOK {
			t.Errorf("accepted with status %d", status)
		}
	})
}
