package canary

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"go.uber.org/zap"
)

// The journal is what lets a canary killed mid-order (kill -9, OOM, a
// node drained) leave nothing behind: every run writes down, before it
// places anything, the authorization it opened and the TXT record it is
// about to publish, in a small file next to the account key; the next run
// of a later process removes what a dead one left and deactivates its
// authorizations, then drops those entries.
const (
	// journalSuffix is appended to the account key file's path.
	journalSuffix = ".journal"
	// maxJournalEntries bounds the file: a canary runs a handful of
	// orders at once, so more entries than this means leftovers nobody can
	// remove; the oldest go first.
	maxJournalEntries = 64
	// maxJournalFile bounds what is read back.
	maxJournalFile = 256 << 10
	// maxRecoverAttempts: an entry whose leftovers still cannot be removed
	// after this many lives is dropped (logged), so a provider that lost
	// its credentials does not make every run retry forever.
	maxRecoverAttempts = 3
	// recoverTimeout bounds the clean-up of leftovers at the start of a run.
	recoverTimeout = 30 * time.Second
)

// journalEntry is one order's open state.
type journalEntry struct {
	ID   string `json:"id"`
	Life string `json:"life"` // the process that wrote it (pid + random)
	PID  int    `json:"pid"`
	Name string `json:"name"`
	// Order and Authz are the CA's URLs; Authz is cleared once the
	// authorization is deactivated (or ended invalid).
	Order string `json:"order,omitempty"`
	Authz string `json:"authz,omitempty"`
	// The dns-01 TXT record, set before Present and cleared after a
	// successful CleanUp: what a provider's CleanUp needs again.
	Domain  string    `json:"domain,omitempty"`
	Token   string    `json:"token,omitempty"`
	KeyAuth string    `json:"key_auth,omitempty"`
	FQDN    string    `json:"fqdn,omitempty"`
	Value   string    `json:"value,omitempty"`
	Started time.Time `json:"started"`
	// Abandoned: the run ended with something left open (a failed clean
	// up); any later run, of this process too, may finish it.
	Abandoned bool `json:"abandoned,omitempty"`
	Attempts  int  `json:"attempts,omitempty"`
}

func (e *journalEntry) open() bool { return e.Authz != "" || e.FQDN != "" }

// life names this process in journal entries: the pid alone repeats after
// a restart in a container (pid 1 every time).
var life = func() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b))
}()

// journalLocks serialize the runs of this process on one journal file
// (the daemon runs several canaries at once with one account key).
var journalLocks sync.Map // path → *sync.Mutex

// journal is one journal file.
type journal struct {
	path string
	mu   *sync.Mutex
	log  *zap.Logger
}

// journalFor returns the journal next to keyFile, or nil for an ephemeral
// key (no file: a new account per run, nothing to come back to).
func journalFor(keyFile string, log *zap.Logger) *journal {
	if keyFile == "" {
		return nil
	}
	path := keyFile + journalSuffix
	mu, _ := journalLocks.LoadOrStore(path, &sync.Mutex{})
	return &journal{path: path, mu: mu.(*sync.Mutex), log: log}
}

// JournalFile is the journal path for an account key file ("" for none).
func JournalFile(accountKeyFile string) string {
	if accountKeyFile == "" {
		return ""
	}
	return accountKeyFile + journalSuffix
}

// load reads the entries; a missing file is empty, a damaged one is logged
// and treated as empty (it is rewritten whole on the next change).
func (j *journal) load() []journalEntry {
	f, err := os.Open(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		j.log.Warn("canary journal unreadable", zap.String("file", j.path), zap.Error(err))
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJournalFile+1))
	if err == nil && len(b) > maxJournalFile {
		err = fmt.Errorf("larger than %d bytes", maxJournalFile)
	}
	var es []journalEntry
	if err == nil {
		err = json.Unmarshal(b, &es)
	}
	if err != nil {
		j.log.Warn("canary journal damaged, ignored", zap.String("file", j.path), zap.Error(err))
		return nil
	}
	return es
}

// store writes the entries atomically (a temporary file renamed over the
// journal), so a kill mid-write leaves the old or the new journal whole.
func (j *journal) store(es []journalEntry) error {
	if len(es) > maxJournalEntries {
		j.log.Warn("canary journal full, dropping the oldest entries", zap.String("file", j.path), zap.Int("dropped", len(es)-maxJournalEntries))
		es = es[len(es)-maxJournalEntries:]
	}
	if len(es) == 0 {
		if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("canary journal %s: %w", j.path, err)
		}
		return nil
	}
	b, err := json.MarshalIndent(es, "", " ")
	if err != nil {
		return fmt.Errorf("canary journal %s: %w", j.path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), filepath.Base(j.path)+".*")
	if err != nil {
		return fmt.Errorf("canary journal %s: %w", j.path, err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), j.path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("canary journal %s: %w", j.path, err)
	}
	return nil
}

// update applies fn to the entries under the lock and stores the result.
func (j *journal) update(fn func([]journalEntry) []journalEntry) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.store(fn(j.load())); err != nil {
		// The order goes on: the journal only matters after a crash.
		j.log.Warn("canary journal not written", zap.Error(err))
	}
}

// put replaces (or adds) the entry with e's ID; a closed entry that is not
// abandoned is removed.
func (j *journal) put(e journalEntry) {
	j.update(func(es []journalEntry) []journalEntry {
		out := es[:0]
		for _, x := range es {
			if x.ID != e.ID {
				out = append(out, x)
			}
		}
		if e.open() {
			out = append(out, e)
		}
		return out
	})
}

// stale says whether an entry was left by a run that is over: another
// life whose process is gone (or is this pid reused), or an abandoned run.
func stale(e journalEntry) bool {
	if e.Abandoned {
		return true
	}
	if e.Life == life {
		return false
	}
	if e.PID == os.Getpid() || e.PID <= 0 {
		return true
	}
	// Another process sharing the key file may still be running its order.
	return syscall.Kill(e.PID, 0) != nil
}

// journalOpen records the authorization a run just opened, before anything
// is published for it.
func (o *order) journalOpen(orderURL string) {
	if o.jr == nil {
		return
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	o.je = journalEntry{ID: hex.EncodeToString(b), Life: life, PID: os.Getpid(), Name: o.name,
		Order: orderURL, Authz: o.authz, Started: o.now().UTC()}
	o.jr.put(o.je)
}

// journalTXT records (before Present) or clears (after CleanUp) the TXT
// record of the run.
func (o *order) journalTXT(domain, token, keyAuth string) {
	if o.jr == nil || o.je.ID == "" {
		return
	}
	o.je.Domain, o.je.Token, o.je.KeyAuth = domain, token, keyAuth
	o.je.FQDN, o.je.Value = "", ""
	if domain != "" {
		o.je.FQDN, o.je.Value = challengeFQDN(domain), txtValue(keyAuth)
	}
	o.jr.put(o.je)
}

// journalAuthzClosed records that the authorization needs nothing more.
func (o *order) journalAuthzClosed() {
	if o.jr == nil || o.je.ID == "" {
		return
	}
	o.je.Authz = ""
	o.jr.put(o.je)
}

// journalEnd closes the run's entry: removed when nothing is left open,
// else marked abandoned for the next run to finish.
func (o *order) journalEnd() {
	if o.jr == nil || o.je.ID == "" || !o.je.open() {
		return
	}
	o.je.Abandoned = true
	o.jr.put(o.je)
	o.log.Warn("canary run left something open; the next run removes it", zap.String("authz", o.je.Authz), zap.String("fqdn", o.je.FQDN))
}

// recover removes what runs that are over left behind: their TXT records
// through this run's provider (kept for a later dns-01 run when this one
// has none) and their authorizations, deactivated when still pending or
// valid. It is a step of its own ("recover") only when there is something.
func (o *order) recover(ctx context.Context) {
	if o.jr == nil {
		return
	}
	o.jr.mu.Lock()
	defer o.jr.mu.Unlock()
	es := o.jr.load()
	var todo []int
	for i, e := range es {
		if stale(e) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recoverTimeout)
	defer cancel()
	_ = o.step("recover", func() error {
		var errs []error
		for _, i := range todo {
			e := &es[i]
			e.Attempts++
			if e.FQDN != "" && o.sol.provider != nil && o.sol.chalType == dns01Type && o.sol.local == "" {
				if err := o.sol.provider.CleanUp(rctx, e.Domain, e.Token, e.KeyAuth); err != nil {
					errs = append(errs, fmt.Errorf("removing TXT %s: %w", e.FQDN, err))
				} else {
					o.log.Info("removed a TXT record a previous run left", zap.String("fqdn", e.FQDN), zap.String("left_by", e.Life))
					e.FQDN, e.Value, e.Domain, e.Token, e.KeyAuth = "", "", "", "", ""
				}
			}
			if e.Authz != "" {
				if err := o.closeAuthz(rctx, e.Authz); err != nil {
					errs = append(errs, fmt.Errorf("deactivating %s: %w", e.Authz, err))
				} else {
					e.Authz = ""
				}
			}
			e.Abandoned = true
			if e.open() && e.Attempts >= maxRecoverAttempts {
				o.log.Warn("giving up on what a previous canary run left", zap.String("authz", e.Authz), zap.String("fqdn", e.FQDN), zap.Int("attempts", e.Attempts))
				e.Authz, e.FQDN = "", ""
			}
		}
		out := es[:0]
		for _, e := range es {
			if e.open() {
				out = append(out, e)
			}
		}
		if err := o.jr.store(out); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// closeAuthz deactivates an authorization that is still pending or valid;
// one that ended otherwise needs nothing.
func (o *order) closeAuthz(ctx context.Context, url string) error {
	az, err := o.core.Authorizations.Get(ctx, url)
	if err != nil {
		return err
	}
	if az.Status != acme.StatusPending && az.Status != acme.StatusValid {
		return nil
	}
	if err := o.core.Authorizations.Deactivate(ctx, url); err != nil {
		return err
	}
	o.log.Info("deactivated an authorization a previous run left", zap.String("authz", url), zap.String("status", az.Status))
	return nil
}
