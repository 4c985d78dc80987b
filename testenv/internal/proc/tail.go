// Package proc holds what the universe's child processes (Unbound, Pebble,
// etcd, kube-apiserver, Prometheus) share: keeping the tail of their output
// for error messages, and running one with its output logged, dying with
// the test binary, polled until ready and stopped gracefully. It must not
// know what any particular process is.
package proc

import (
	"bytes"
	"sync"
)

// TailBuffer keeps the last Max bytes written to it: a child process's
// output, for error messages that show why it failed.
type TailBuffer struct {
	Max int

	mu  sync.Mutex
	buf []byte
}

// Write keeps p, dropping the oldest bytes beyond Max.
func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.Max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.Max:]...)
	}
	return len(p), nil
}

// String is the kept tail, trimmed of surrounding space.
func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// Tail returns at most n trailing bytes of b.
func Tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
