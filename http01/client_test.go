package http01

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// boulderClient is the http.Client Boulder's doValidationRequest builds: a
// fresh transport dialing a pre-resolved address, keep-alives off,
// certificates not verified, redirects handed back.
func boulderClient(addr netip.Addr, port int) *http.Client {
	dst := netip.AddrPortFrom(addr, uint16(port)).String()
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext(ctx, network, dst)
			},
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as Boulder
			DisableKeepAlives:   true,
			MaxIdleConns:        1,
			IdleConnTimeout:     time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// captureHeads accepts connections on ln and sends each request head it
// reads to heads, then answers reply.
func captureHeads(t *testing.T, ln net.Listener, reply string) <-chan string {
	t.Helper()
	heads := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(3 * time.Second))
				var head []byte
				buf := make([]byte, 4096)
				for !strings.Contains(string(head), "\r\n\r\n") && len(head) < 1<<16 {
					n, err := c.Read(buf)
					head = append(head, buf[:n]...)
					if err != nil {
						break
					}
				}
				heads <- string(head)
				_, _ = io.WriteString(c, reply)
			}()
		}
	}()
	return heads
}

// TestClientMatchesNetHTTP sends the same requests through Boulder's
// net/http client and through the lean client and requires the same bytes
// on the wire and the same classified outcome.
func TestClientMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc    string
		path    string // request path and query
		referer string
		tls     bool
		reply   string
		want    string // Boulder's detailed text for the outcome, "" for a response
	}{
		{desc: "plain GET", path: "/.well-known/acme-challenge/" + tok, reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{desc: "query and referer", path: "/a/b?c=d&e", referer: "http://www.example.com/.well-known/acme-challenge/x", reply: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
		{desc: "escaped path", path: "/a%20b/%2Fc", reply: "HTTP/1.1 200 OK\r\n\r\n"},
		{desc: "over TLS", path: "/x", tls: true, reply: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{desc: "h2c settings frame", path: "/x", reply: "\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64\x00\x04\x00\x10\x00\x00\x00\x06\x00\x00\x40\x00", want: "Server is speaking HTTP/2 over HTTP"},
		{desc: "garbage", path: "/x", reply: "SSH-2.0-OpenSSH_9.6\r\n", want: "Error getting validation data"},
		{desc: "closed without answer", path: "/x", reply: "", want: "Error getting validation data"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ln, port, scheme := e.httpLn, e.httpPort, "http"
			if tc.tls {
				ln = tls.NewListener(e.httpsLn, &tls.Config{Certificates: []tls.Certificate{selfSigned(t, []string{"www.example.com"}, nil)}})
				port, scheme = e.httpsPort, "https"
			}
			heads := captureHeads(t, ln, tc.reply)
			raw := scheme + "://www.example.com:" + strconv.Itoa(port) + tc.path
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()

			req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("User-Agent", DefaultUserAgent)
			req.Header.Set("Accept", "*/*")
			if tc.referer != "" {
				req.Header.Set("Referer", tc.referer)
			}
			resp, goErr := boulderClient(e.ip, port).Do(req)
			var goStatus int
			if goErr == nil {
				goStatus = resp.StatusCode
				resp.Body.Close()
			}
			goHead := <-heads

			v := e.validator()
			u, _ := url.Parse(raw)
			x, ourErr := v.do(ctx, target{url: u, urlStr: raw, host: "www.example.com", port: port, addr: e.ip}, tc.referer)
			var ourStatus int
			if ourErr == nil {
				ourStatus = x.resp.StatusCode
			}
			x.close()
			ourHead := <-heads

			if ourHead != goHead {
				t.Errorf("request head differs\n net/http: %q\n ours:     %q", goHead, ourHead)
			}
			if goStatus != ourStatus {
				t.Errorf("status: net/http %d, ours %d", goStatus, ourStatus)
			}
			if (goErr == nil) != (ourErr == nil) {
				t.Fatalf("errors: net/http %v, ours %v", goErr, ourErr)
			}
			if goErr != nil {
				g, o := detailed(goErr, false), detailed(ourErr, false)
				if g.typ != o.typ || g.text != o.text || !strings.HasSuffix(o.text, tc.want) {
					t.Errorf("classified: net/http %s %q, ours %s %q, want suffix %q", g.typ, g.text, o.typ, o.text, tc.want)
				}
			} else if tc.want != "" {
				t.Errorf("no error, want %q", tc.want)
			}
		})
	}
}
