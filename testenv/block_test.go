package testenv

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// TestTwoUniversesAtOnce starts two universes side by side, each in the
// first address block free at its start (on its block's default port, as
// `make demo` and the diagnose tests do), and checks that both resolve
// through their own resolvers, vantages included, to their own addresses,
// and serve the web on them.
func TestTwoUniversesAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var us []*Universe
	for range 2 {
		b, err := FreeBlock(0)
		if err != nil {
			t.Fatal(err)
		}
		u, err := Start(ctx, Options{Block: b, WorkDir: t.TempDir(), Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
		if err != nil {
			t.Fatalf("universe in block %d: %v", b, err)
		}
		t.Cleanup(func() { _ = u.Close() })
		us = append(us, u)
	}
	if us[0].Block() == us[1].Block() || us[0].Port() == us[1].Port() {
		t.Fatalf("both universes in block %d, port %d", us[0].Block(), us[0].Port())
	}
	for _, u := range us {
		cases := []struct {
			desc, resolver, name, want string
		}{
			{desc: "public resolver", resolver: u.Resolver(), name: "www.healthy-signed.com.", want: u.InBlock(WebAddr)},
			{desc: "cluster resolver, split view", resolver: u.ClusterResolver(), name: "www.split.com.", want: u.InBlock(SplitAddr)},
			{desc: "a vantage's resolver", resolver: u.Vantages()[0].Resolver, name: "www.healthy-signed.com.", want: u.InBlock(WebAddr)},
			{desc: "a root server, asked directly", resolver: net.JoinHostPort(u.Roots()[0], strconv.Itoa(u.Port())), name: "com.", want: ""},
		}
		for _, tc := range cases {
			t.Run("block "+strconv.Itoa(u.Block())+"/"+tc.desc, func(t *testing.T) {
				m := new(dns.Msg)
				m.SetQuestion(tc.name, dns.TypeA)
				m.RecursionDesired = tc.want != ""
				r, _, err := (&dns.Client{Timeout: 5 * time.Second}).ExchangeContext(ctx, m, tc.resolver)
				if err != nil {
					t.Fatal(err)
				}
				if tc.want == "" {
					if len(r.Ns) == 0 {
						t.Errorf("%s: no referral from %s: %v", tc.name, tc.resolver, r)
					}
					return
				}
				if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != tc.want {
					t.Errorf("%s via %s: %v, want A %s", tc.name, tc.resolver, r.Answer, tc.want)
				}
			})
		}
		t.Run("block "+strconv.Itoa(u.Block())+"/web", func(t *testing.T) {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(u.InBlock(WebAddr), strconv.Itoa(u.HTTPPort())), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
		})
	}
}

func TestBlockOption(t *testing.T) {
	for _, b := range []int{-1, MaxBlock + 1} {
		if _, err := Start(context.Background(), Options{Block: b}); err == nil {
			t.Errorf("block %d started", b)
		}
	}
	u := &Universe{block: blockReplacer(2)}
	if got := u.InBlock("www A 127.80.0.1; ns 127.53.1.2; from 127.10.0.3; 127.100.0.1"); got != "www A 127.82.0.1; ns 127.55.1.2; from 127.12.0.3; 127.100.0.1" {
		t.Errorf("InBlock = %q", got)
	}
}
