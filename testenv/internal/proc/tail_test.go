package proc

import (
	"strings"
	"testing"
)

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	b := &TailBuffer{Max: 8}
	for _, s := range []string{"hello ", "world", "!\n"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "o world!" && got != "world!" {
		t.Errorf("String() = %q, want the last 8 bytes trimmed", got)
	}
	if got := Tail([]byte(strings.Repeat("x", 10)+"end"), 3); got != "end" {
		t.Errorf("Tail = %q", got)
	}
}
