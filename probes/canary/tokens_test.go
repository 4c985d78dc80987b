package canary

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// The token server serves what an order presents, for the whole run, and
// tells a waiting probe the token, or that the order ended without one.
func TestTokenServer(t *testing.T) {
	t.Parallel()
	ts, err := ServeTokens("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got := make(chan [2]string, 1)
	go func() {
		token, keyAuth, err := ts.Await(ctx, "a.example.com")
		if err != nil {
			t.Errorf("await: %v", err)
		}
		got <- [2]string{token, keyAuth}
	}()
	if err := ts.Present(ctx, "a.example.com", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != [2]string{"tok", "tok.thumb"} {
		t.Errorf("await gave %q", g)
	}
	_ = ts.CleanUp(ctx, "a.example.com", "tok", "tok.thumb")
	fetch := func(path string) (int, string) {
		resp, err := http.Get("http://" + ts.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := fetch("/.well-known/acme-challenge/tok"); code != 200 || body != "tok.thumb" {
		t.Errorf("after CleanUp: %d %q, want the key authorization still served", code, body)
	}
	if code, _ := fetch("/.well-known/acme-challenge/other"); code != 404 {
		t.Errorf("an unknown token: %d, want 404", code)
	}
	// An order that ends before its challenge: the probe goes on without.
	ts.Done("b.example.com")
	if _, _, err := ts.Await(ctx, "b.example.com"); err == nil {
		t.Error("await after an order without a token: no error")
	}
}
