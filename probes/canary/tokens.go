package canary

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenServer serves HTTP-01 key authorizations on one address for a whole
// diagnose run (--serve-token), as the challenge.Provider of its orders.
// It is up before any probe runs and until the run ends, so acmediag's own
// HTTP-01 probes reach it too, and they fetch the order's real token
// (Await) and check its key authorization: the verdict is then the CA's.
// lego's own provider server listens only between Present and CleanUp,
// which left the probes refused.
type TokenServer struct {
	srv *http.Server
	ln  net.Listener

	mu     sync.Mutex
	tokens map[string]string // token → key authorization
	byName map[string]served
	ready  map[string]chan struct{} // closed when a token is presented or the order ends
}

type served struct{ token, keyAuth string }

// ServeTokens listens on addr (HOST:PORT) and serves presented tokens at
// /.well-known/acme-challenge/TOKEN.
func ServeTokens(addr string) (*TokenServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("canary: serving tokens on %s: %w", addr, err)
	}
	ts := &TokenServer{ln: ln, tokens: map[string]string{}, byName: map[string]served{}, ready: map[string]chan struct{}{}}
	ts.srv = &http.Server{Handler: http.HandlerFunc(ts.serve), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10}
	go func() { _ = ts.srv.Serve(ln) }()
	return ts, nil
}

// Addr is the address the server listens on.
func (ts *TokenServer) Addr() string { return ts.ln.Addr().String() }

// Close stops serving.
func (ts *TokenServer) Close() error { return ts.srv.Close() }

func (ts *TokenServer) serve(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	ts.mu.Lock()
	keyAuth, known := ts.tokens[token]
	ts.mu.Unlock()
	if r.Method != http.MethodGet || !ok || !known {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(keyAuth))
}

// Present implements challenge.Provider: the token is served from now on.
func (ts *TokenServer) Present(_ context.Context, domain, token, keyAuth string) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.tokens[token] = keyAuth
	ts.byName[domain] = served{token, keyAuth}
	ts.signal(domain)
	return nil
}

// CleanUp implements challenge.Provider. The token stays served until
// Close: the run's own probes may fetch it after the CA validated, and the
// authorization is deactivated by then, so serving it is harmless.
func (ts *TokenServer) CleanUp(context.Context, string, string, string) error { return nil }

// Done says the order for domain has ended: a probe still waiting for its
// token (it never came: the order failed before the challenge) goes on
// without it.
func (ts *TokenServer) Done(domain string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.signal(domain)
}

// signal closes domain's ready channel; ts.mu is held.
func (ts *TokenServer) signal(domain string) {
	ch, ok := ts.ready[domain]
	if !ok {
		ch = make(chan struct{})
		ts.ready[domain] = ch
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Await waits until the order for domain presents its token, or ends
// without one, or ctx ends; ok is false without a token.
func (ts *TokenServer) Await(ctx context.Context, domain string) (token, keyAuth string, err error) {
	ts.mu.Lock()
	ch, ok := ts.ready[domain]
	if !ok {
		ch = make(chan struct{})
		ts.ready[domain] = ch
	}
	ts.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return "", "", ctx.Err()
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	s, ok := ts.byName[domain]
	if !ok {
		return "", "", errNoToken
	}
	return s.token, s.keyAuth, nil
}

var errNoToken = errors.New("canary: the order ended before presenting a token")

// FullOrder completes the order for name answering HTTP-01 through ts
// (account, order, authorization, challenge, poll, finalize, download,
// then deactivation), and tells ts when it ends.
func FullOrder(ctx context.Context, cfg Config, name string, ts *TokenServer) Outcome {
	defer ts.Done(name)
	return run(ctx, cfg, name, solver{chalType: http01Type, step: "serve_token", provider: ts, local: "serve token on " + ts.Addr()})
}
