package probes

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The HTTP servers of the daemon and the agent face whoever can reach
// them. Two nets keep them up: a panic in a handler becomes a 500 with a
// short message (the stack in the log, never in the answer), and a
// listener that accounts connections per client, so one client's slow
// requests cannot take every connection from the others (the kubelet's
// health checks among them).

// RecoverHTTP serves h, turning a panic into a 500 whose body says only
// that the request failed inside acmediag; the panic and its stack go to
// log and onPanic (nil: nothing) counts it. http.ErrAbortHandler, the
// way a handler aborts a response on purpose, passes through.
func RecoverHTTP(h http.Handler, log *zap.Logger, onPanic func()) http.Handler {
	if log == nil {
		log = zap.NewNop()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			log.Error("request handler panicked", zap.String("method", r.Method), zap.String("path", truncate(r.URL.Path, 100)),
				zap.String("remote", r.RemoteAddr), zap.Any("panic", rec), zap.Stack("stack"))
			if onPanic != nil {
				onPanic()
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":"internal error: the request failed inside acmediag; the log has the details"}` + "\n"))
		}()
		h.ServeHTTP(w, r)
	})
}

// ConnLimits bound the connections a ClientListener keeps open.
type ConnLimits struct {
	Total     int // every client's together
	PerClient int // one client address's
}

// ClientListener accepts every connection at once and keeps at most
// PerClient open per client address (IP, the port aside) and Total in all;
// a connection past either cap is closed at once rather than left waiting
// in the kernel's accept queue, where it would wait behind a flood's. The
// server's short header deadline then frees the slots a slow client holds.
type ClientListener struct {
	net.Listener
	// Refuse, when set, answers a connection past the limits (on a
	// goroutine of its own) and must close it; nil resets it.
	Refuse  func(net.Conn)
	limits  ConnLimits
	refused func(reason string) // nil: not counted

	mu       sync.Mutex
	open     int
	byClient map[string]int
}

// NewClientListener wraps ln; refused, when set, counts each connection
// closed at once, by reason ("per_client" or "total").
func NewClientListener(ln net.Listener, limits ConnLimits, refused func(reason string)) *ClientListener {
	return &ClientListener{Listener: ln, limits: limits, refused: refused, byClient: map[string]int{}}
}

// Accept returns the next connection within the limits.
func (l *ClientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := clientOf(c.RemoteAddr())
		if reason := l.admit(client); reason != "" {
			if l.refused != nil {
				l.refused(reason)
			}
			if l.Refuse != nil {
				go l.Refuse(c)
				continue
			}
			if tc, ok := c.(*net.TCPConn); ok {
				// A reset, not a FIN: the socket is gone at once instead of
				// lingering in TIME_WAIT for a flood's worth of connections.
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		return &clientConn{Conn: c, l: l, client: client}, nil
	}
}

// Open is how many connections are open in all and from client.
func (l *ClientListener) Open(client string) (total, fromClient int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.byClient[client]
}

func (l *ClientListener) admit(client string) (refused string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.byClient[client] >= l.limits.PerClient:
		return "per_client"
	case l.open >= l.limits.Total:
		return "total"
	}
	l.open++
	l.byClient[client]++
	return ""
}

func (l *ClientListener) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byClient[client]--; l.byClient[client] <= 0 {
		delete(l.byClient, client)
	}
}

// tooManyConnections is RefuseHTTP's answer.
var tooManyConnections = func() string {
	body := `{"error":"too many connections from your address; retry shortly"}` + "\n"
	return "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// RefuseHTTP answers a plain-HTTP connection past the limits with a 429
// before closing it, so that a client opening many connections at once
// gets an answer it understands. It reads the request's head first (a
// client takes an answer before its request for a broken connection), and
// what follows (bounded) so that the close is not a reset that could
// overtake the answer; a client silent for half a second is just closed.
func RefuseHTTP(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	r := bufio.NewReaderSize(io.LimitReader(c, 64<<10), 1024)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 && err == nil {
			break
		}
	}
	if _, err := io.WriteString(c, tooManyConnections); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, r)
}

// clientOf is the client's address without the port.
func clientOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	s := a.String()
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[:i]
	}
	return s
}

// clientConn gives its slot back when closed, once.
type clientConn struct {
	net.Conn
	l      *ClientListener
	client string
	once   sync.Once
}

func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.client) })
	return err
}
