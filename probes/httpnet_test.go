package probes

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// A client listener keeps PerClient connections per address and Total in
// all, closes the rest at once (counted by reason), and gives a slot back
// when its connection closes.
func TestClientListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	refused := map[string]int{}
	ln := NewClientListener(inner, ConnLimits{Total: 3, PerClient: 2}, func(r string) { mu.Lock(); refused[r]++; mu.Unlock() })
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(src byte) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, src)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	// closedByServer reports whether the server closed c at once (a reset
	// may come before the dial returns).
	closedByServer := func(c net.Conn, err error) bool {
		if err != nil {
			return true
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	steps := []struct {
		src        byte
		wantClosed bool
	}{
		{2, false}, {2, false}, {2, true}, // the third from .2: its share is 2
		{3, false}, // the third in all
		{4, true},  // past the total
	}
	var kept []net.Conn
	for i, st := range steps {
		c, err := dial(st.src)
		if st.wantClosed {
			if !closedByServer(c, err) {
				t.Errorf("step %d: a connection from 127.0.0.%d past the limits was kept", i, st.src)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		sc := <-accepted
		kept = append(kept, sc)
	}
	if total, from2 := ln.Open("127.0.0.2"); total != 3 || from2 != 2 {
		t.Errorf("open %d, from 127.0.0.2 %d; want 3 and 2", total, from2)
	}
	mu.Lock()
	if refused["per_client"] != 1 || refused["total"] != 1 {
		t.Errorf("refused %v, want one per_client and one total", refused)
	}
	mu.Unlock()
	// One closed (twice: the slot comes back once) makes room for .4.
	kept[0].Close()
	kept[0].Close()
	if _, err := dial(4); err != nil {
		t.Fatal(err)
	}
	<-accepted
	if total, from4 := ln.Open("127.0.0.4"); total != 3 || from4 != 1 {
		t.Errorf("open %d, from 127.0.0.4 %d; want 3 and 1", total, from4)
	}
}

// A panicking handler answers 500 with a short message, the stack only in
// the log; http.ErrAbortHandler passes through to net/http.
func TestRecoverHTTP(t *testing.T) {
	t.Parallel()
	var count int
	h := RecoverHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("injected: secret detail")
	}), zaptest.NewLogger(t), func() { count++ })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusInternalServerError || strings.Contains(string(body), "secret") || strings.Contains(string(body), "goroutine") || count != 1 {
		t.Errorf("status %d body %q count %d", rec.Code, body, count)
	}
	func() {
		defer func() {
			if rec := recover(); rec != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler passed on", rec)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/abort", nil))
	}()
	if count != 1 {
		t.Errorf("an abort was counted as a panic")
	}
}

// With RefuseHTTP, an HTTP client past its address's share gets a 429 it
// can read, not a reset.
func TestRefuseHTTP(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewClientListener(inner, ConnLimits{Total: 10, PerClient: 1}, nil)
	ln.Refuse = RefuseHTTP
	block := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block })}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	defer close(block)
	url := "http://" + inner.Addr().String() + "/"
	go func() { _, _ = http.Get(url) }() // holds the address's one slot
	for deadline := time.Now().Add(5 * time.Second); ; {
		if n, _ := ln.Open("127.0.0.1"); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first connection never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Post(url, "text/plain", strings.NewReader(strings.Repeat("x", 10000)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "too many connections") {
		t.Errorf("status %d %q, want a 429 with Retry-After", resp.StatusCode, body)
	}
}
