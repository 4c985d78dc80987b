package run

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/acmediag/acmediag/probes"
)

// Cluster mode: the daemon's pods elect a leader with a coordination.k8s.io
// Lease (client-go's leaderelection: get, create and update of one Lease,
// the verbs files/rbac-namespace-rules.yaml grants). Every pod probes as a
// vantage; the leader alone runs the LeaderWork (the cert-manager watch),
// the leader-only lanes (the canary) and the peer merge. Nothing a term
// needs lives only in the leader's memory: the open renewal attempts are
// cert-manager's objects in the API server, listed again by the next
// leader's informers, so a leader that dies loses none of them. Without
// cluster mode the one daemon leads for its whole life.

// LeaderWork is work only the leader does: Run is started when this pod
// becomes the leader and its ctx is cancelled when the pod loses the lease
// (or the daemon stops). A Run that returns an error before then is
// started again after a pause, while the pod still leads.
type LeaderWork struct {
	Name string
	Run  func(ctx context.Context) error
}

// Pauses between runs of a LeaderWork that returned early.
const (
	leaderWorkMinPause = time.Second
	leaderWorkMaxPause = 30 * time.Second
)

// elect competes for the Lease until ctx ends, leading (lead) whenever it
// holds it. A lost lease cancels the term; the pod then competes again.
func (d *Daemon) elect(ctx context.Context, cp *probes.ClusterPlan, cs kubernetes.Interface) {
	log := d.log.Named("leader").With(zap.String("lease", cp.Namespace+"/"+cp.LeaseName), zap.String("identity", cp.Identity))
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cp.Namespace, Name: cp.LeaseName},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cp.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: cp.LeaseName,
			LeaseDuration: cp.LeaseDuration, RenewDeadline: cp.RenewDeadline, RetryPeriod: cp.RetryPeriod,
			// A daemon that stops gives the lease up, so the next pod
			// leads at once instead of after lease_duration.
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(term context.Context) {
					log.Info("leading")
					d.lead(term, cp, cs)
				},
				OnStoppedLeading: func() { log.Info("not leading") },
				OnNewLeader: func(id string) {
					if id != cp.Identity {
						log.Info("another pod leads", zap.String("leader", id))
					}
				},
			},
		})
		if err != nil {
			// Build validated the timing; this is a programming error.
			log.Error("leader election refused its configuration", zap.Error(err))
			return
		}
		le.Run(ctx)
	}
}

// lead is one term: the leader-only lanes run, every LeaderWork runs, the
// peers are merged; when ctx ends all of it stops before lead returns, so
// two terms never overlap in one process. cp is nil without cluster mode.
func (d *Daemon) lead(ctx context.Context, cp *probes.ClusterPlan, cs kubernetes.Interface) {
	d.termMu.Lock()
	defer d.termMu.Unlock()
	d.leader.Set(1)
	d.leading.Store(true)
	if cp != nil {
		d.engine.SetLeading(true)
	}
	var wg sync.WaitGroup
	for _, w := range d.opts.LeaderWork {
		wg.Go(func() { d.runLeaderWork(ctx, w) })
	}
	if cp != nil && cp.Service != "" {
		wg.Go(func() { d.peers.run(ctx, cp, cs) })
	}
	<-ctx.Done()
	wg.Wait()
	if cp != nil {
		d.engine.SetLeading(false)
		d.peers.forgetAll()
	}
	d.leading.Store(false)
	d.leader.Set(0)
}

// runLeaderWork runs w until ctx ends, starting it again (after a
// growing pause) when it returns early or panics.
func (d *Daemon) runLeaderWork(ctx context.Context, w LeaderWork) {
	log := d.log.Named("leader").With(zap.String("work", w.Name))
	pause := leaderWorkMinPause
	for ctx.Err() == nil {
		err := safeRun(ctx, w.Run)
		if ctx.Err() != nil {
			return
		}
		log.Error("leader work stopped early; starting it again", zap.Error(err), zap.Duration("after", pause))
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, leaderWorkMaxPause)
	}
}

// safeRun is run(ctx) with a panic turned into its error: one broken
// LeaderWork must not take the daemon's probing down with it.
func safeRun(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	if err = run(ctx); err == nil {
		err = errors.New("returned without an error")
	}
	return err
}
