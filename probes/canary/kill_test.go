package canary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/testenv"
)

// killChildEnv carries a killChild description to a re-executed test
// binary: the canary then runs in that child process, which the test
// kills with SIGKILL where the description says.
const killChildEnv = "ACMEDIAG_CANARY_KILL_CHILD"

// killChild is one dns-01 order run in a child process.
type killChild struct {
	Directory, CACert, KeyFile, Name string
	Resolver                         string   // lego's recursive resolver
	ZoneAddrs                        []string // the propagation check's servers
	// Pause is the testHook point where the child writes Marker and blocks
	// until it is killed; "" runs the order to its end.
	Pause, Marker string
}

func TestMain(m *testing.M) {
	if v := os.Getenv(killChildEnv); v != "" {
		os.Exit(runKillChild(v))
	}
	os.Exit(m.Run())
}

// runKillChild is the child's whole life: one order, its Outcome as JSON
// on stdout.
func runKillChild(desc string) int {
	var c killChild
	if err := json.Unmarshal([]byte(desc), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	testHook = func(point string) {
		if point != c.Pause {
			return
		}
		if err := os.WriteFile(c.Marker, []byte(point), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		select {} // until SIGKILL
	}
	UseResolvers([]string{c.Resolver}, 2*time.Second)
	p, err := DNSProvider("rfc2136")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := DNS01Order(ctx, Config{DirectoryURL: c.Directory, CACertFile: c.CACert, AccountKeyFile: c.KeyFile,
		DNS01Propagation: propagated(c.ZoneAddrs), Logger: zap.NewNop()}, c.Name, p)
	var steps []string
	for _, s := range out.Steps {
		steps = append(steps, s.Name+" "+s.Err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"issued": out.Issued, "steps": steps, "codes": codes(out.Findings), "err": fmt.Sprint(out.Err)})
	return 0
}

// TestKillDuringDNS01Order kills a canary (kill -9) at each step of a
// dns-01 order against the universe's Pebble and DNS, then starts it again:
// the new life removes the TXT record the dead one published and
// deactivates its authorization, and its journal ends empty.
func TestKillDuringDNS01Order(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the universe and pebble")
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	u, err := testenv.Start(ctx, testenv.Options{Port: dns01Port, ACME: true, WorkDir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	keyName, alg, secret := u.TSIG()
	primary := u.UpdatePrimary(dns01Zone)
	addrs := zoneAddrs(u, dns01Zone)
	if keyName == "" || primary == "" || len(addrs) < 2 {
		t.Fatalf("universe: key %q primary %q servers %v", keyName, primary, addrs)
	}
	env := append(os.Environ(), "RFC2136_NAMESERVER="+primary, "RFC2136_TSIG_KEY="+keyName,
		"RFC2136_TSIG_ALGORITHM="+alg, "RFC2136_TSIG_SECRET="+secret)

	cases := []struct {
		desc, pause string
		wantTXT     bool // the record is out when the child dies
		wantAuthz   bool // the authorization is still open when it dies
		wantStatus  string
	}{
		{desc: "killed after publishing the TXT record", pause: "published", wantTXT: true, wantAuthz: true, wantStatus: acme.StatusPending},
		{desc: "killed after the CA accepted the challenge", pause: "answered", wantTXT: true, wantAuthz: true},
		{desc: "killed before removing the TXT record", pause: "cleanup", wantTXT: true},
	}
	for i, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			c := killChild{Directory: u.ACMEDirectory(), CACert: u.ACMECACert(), KeyFile: filepath.Join(dir, "key.pem"),
				Name: fmt.Sprintf("kill%d.%s", i, strings.TrimSuffix(dns01Zone, ".")), Resolver: u.ClusterResolver(),
				ZoneAddrs: addrs, Pause: tc.pause, Marker: filepath.Join(dir, "paused")}

			// First life: paused at the step, then SIGKILL.
			child := startKillChild(t, c, env)
			waitMarker(t, c.Marker, child)
			left := readJournal(t, c.KeyFile)
			if len(left) != 1 {
				t.Fatalf("journal at %s: %d entries, want 1: %+v", tc.pause, len(left), left)
			}
			dead := left[0]
			if (dead.FQDN != "") != tc.wantTXT || (dead.Authz != "") != tc.wantAuthz {
				t.Fatalf("journal entry %+v: want TXT %v, authz %v", dead, tc.wantTXT, tc.wantAuthz)
			}
			if vs, err := txtOn(ctx, primary, dead.FQDN); err != nil || !slices.Contains(vs, dead.Value) {
				t.Fatalf("before the restart the primary has TXT %q (err %v), want the dead run's %q", vs, err, dead.Value)
			}
			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			authzURL := dead.Authz
			if authzURL == "" {
				authzURL = journalAuthzOf(t, c, dead)
			}
			if tc.wantStatus != "" {
				if st := authzStatus(t, c, authzURL); st != tc.wantStatus {
					t.Fatalf("authorization %s is %s before the restart, want %s", authzURL, st, tc.wantStatus)
				}
			}

			// Second life: a full order, which first cleans up.
			c.Pause, c.Marker = "", ""
			restart := startKillChild(t, c, env)
			if err := restart.Wait(); err != nil {
				t.Fatalf("second life: %v\n%s", err, restart.Stderr)
			}
			var res struct {
				Issued bool
				Steps  []string
				Codes  []string
				Err    string
			}
			if err := json.Unmarshal([]byte(restart.Stdout.(*strings.Builder).String()), &res); err != nil {
				t.Fatalf("second life output %q: %v", restart.Stdout, err)
			}
			t.Logf("second life: %+v", res)
			if !slices.Contains(res.Steps, "recover ") {
				t.Errorf("second life steps %v lack a clean recover step", res.Steps)
			}
			if !res.Issued {
				t.Errorf("second life did not issue: %+v", res)
			}
			for _, a := range addrs {
				if vs, err := txtOn(ctx, a, dead.FQDN); err != nil || slices.Contains(vs, dead.Value) {
					t.Errorf("%s after the restart: TXT %q (err %v) still holds the dead run's %q", a, vs, err, dead.Value)
				}
			}
			if st := authzStatus(t, c, authzURL); st == acme.StatusPending || st == acme.StatusValid {
				t.Errorf("the dead run's authorization %s is still %s", authzURL, st)
			}
			if es := readJournal(t, c.KeyFile); len(es) != 0 {
				t.Errorf("journal after the restart: %+v, want empty", es)
			}
		})
	}
}

// startKillChild re-executes this test binary as a canary child.
func startKillChild(t *testing.T, c killChild, env []string) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(slices.Clone(env), killChildEnv+"="+string(b))
	cmd.Stdout, cmd.Stderr = &strings.Builder{}, &strings.Builder{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

// waitMarker waits until the child paused (or fails when it exited first).
func waitMarker(t *testing.T, marker string, child *exec.Cmd) {
	t.Helper()
	exited := make(chan error, 1)
	go func() { _, err := child.Process.Wait(); exited <- err }()
	deadline := time.After(90 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("the child exited before pausing (%v):\n%s\n%s", err, child.Stdout, child.Stderr)
		case <-deadline:
			t.Fatalf("the child never paused:\n%s", child.Stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func readJournal(t *testing.T, keyFile string) []journalEntry {
	t.Helper()
	b, err := os.ReadFile(JournalFile(keyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var es []journalEntry
	if err := json.Unmarshal(b, &es); err != nil {
		t.Fatalf("journal %s: %v\n%s", JournalFile(keyFile), err, b)
	}
	return es
}

// acmeCore is a lego client on the child's account.
func acmeCore(t *testing.T, c killChild) *api.Core {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, err := loadOrCreateKey(c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	hc, _, err := newHTTPClient(ctx, c.CACert, nil)
	if err != nil {
		t.Fatal(err)
	}
	core, err := api.New(hc, "acmediag-test", c.Directory, "", key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Accounts.New(ctx, acme.Account{TermsOfServiceAgreed: true}); err != nil {
		t.Fatal(err)
	}
	return core
}

// authzStatus asks Pebble for an authorization's status.
func authzStatus(t *testing.T, c killChild, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	az, err := acmeCore(t, c).Authorizations.Get(ctx, url)
	if err != nil {
		t.Fatalf("authorization %s: %v", url, err)
	}
	return az.Status
}

// journalAuthzOf finds the authorization of an entry whose authorization
// was already closed, through its order.
func journalAuthzOf(t *testing.T, c killChild, e journalEntry) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ord, err := acmeCore(t, c).Orders.Get(ctx, e.Order)
	if err != nil || len(ord.Authorizations) != 1 {
		t.Fatalf("order %s: %+v, %v", e.Order, ord, err)
	}
	return ord.Authorizations[0]
}
