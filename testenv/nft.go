package testenv

import (
	"bufio"
	"context"
	"fmt"
	"github.com/acmediag/acmediag/testenv/internal/proc"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// dropSpec is one packet-drop fault: TCP to addr on the universe's HTTP (or
// HTTPS) port from the given source addresses (none: from everywhere) is
// silently dropped, so connects time out.
type dropSpec struct {
	addr    string
	https   bool
	sources []string
}

// firewallEnabled says whether packet-drop faults can be staged here: as
// root, or under CI (where they must run, and failing to install them is an
// error).
func firewallEnabled() bool { return os.Geteuid() == 0 || os.Getenv("CI") == "true" }

// firewall is the universe's own nftables table.
type firewall struct {
	bin   string
	table string // "acmediag_<pid>_<port>"
	log   *zap.Logger
}

// nftRules renders the drop rules; ports are the universe's.
func nftRules(table string, drops []dropSpec, httpPort, httpsPort int) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n  chain input {\n    type filter hook input priority 0; policy accept;\n", table)
	for _, d := range drops {
		dst, err := netip.ParseAddr(d.addr)
		if err != nil {
			return "", fmt.Errorf("drop rule: %w", err)
		}
		fam := "ip"
		if dst.Is6() {
			fam = "ip6"
		}
		port := httpPort
		if d.https {
			port = httpsPort
		}
		if len(d.sources) == 0 {
			fmt.Fprintf(&b, "    %s daddr %s tcp dport %d drop\n", fam, dst, port)
			continue
		}
		for _, s := range d.sources {
			src, err := netip.ParseAddr(s)
			if err != nil || src.Is6() != dst.Is6() {
				return "", fmt.Errorf("drop rule: bad source %q for %s", s, dst)
			}
			fmt.Fprintf(&b, "    %s saddr %s %s daddr %s tcp dport %d drop\n", fam, src, fam, dst, port)
		}
	}
	b.WriteString("  }\n}\n")
	return b.String(), nil
}

// startFirewall removes tables left by crashed runs, then installs this
// universe's drop rules in a table of its own.
func startFirewall(ctx context.Context, log *zap.Logger, port int, drops []dropSpec, httpPort, httpsPort int) (*firewall, error) {
	bin, err := EnsureCommand(ctx, "nft", "nftables")
	if err != nil {
		return nil, err
	}
	fw := &firewall{bin: bin, table: fmt.Sprintf("acmediag_%d_%d", os.Getpid(), port), log: log}
	fw.removeStale(ctx)
	rules, err := nftRules(fw.table, drops, httpPort, httpsPort)
	if err != nil {
		return nil, err
	}
	// A table of the same name (this process, same port, not closed) is
	// replaced.
	_ = fw.run(ctx, "", "delete", "table", "inet", fw.table)
	if err := fw.run(ctx, rules, "-f", "-"); err != nil {
		return nil, fmt.Errorf("nft: installing %d drop rules: %w", len(drops), err)
	}
	log.Info("packet-drop rules installed", zap.String("table", fw.table), zap.Int("rules", len(drops)))
	return fw, nil
}

func (fw *firewall) run(ctx context.Context, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, fw.bin, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, proc.Tail(out, 2000))
	}
	return nil
}

// removeStale deletes acmediag_<pid>_* tables whose process is gone.
func (fw *firewall) removeStale(ctx context.Context) {
	out, err := exec.CommandContext(ctx, fw.bin, "list", "tables").Output()
	if err != nil {
		fw.log.Warn("nft list tables", zap.Error(err))
		return
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for n := 0; sc.Scan() && n < 10000; n++ {
		f := strings.Fields(sc.Text()) // "table inet acmediag_123_53"
		if len(f) != 3 || f[0] != "table" || !strings.HasPrefix(f[2], "acmediag_") {
			continue
		}
		pid, err := strconv.Atoi(strings.Split(strings.TrimPrefix(f[2], "acmediag_"), "_")[0])
		if err == nil && pid != os.Getpid() {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				continue // another live universe's table
			}
		} else if err == nil {
			continue // ours: replaced by the caller if it is this port's
		}
		if err := fw.run(ctx, "", "delete", "table", f[1], f[2]); err != nil {
			fw.log.Warn("removing a stale table", zap.String("table", f[2]), zap.Error(err))
		} else {
			fw.log.Info("removed a stale table", zap.String("table", f[2]))
		}
	}
}

// close deletes the universe's table.
func (fw *firewall) close() error {
	if fw == nil {
		return nil
	}
	return fw.run(context.Background(), "", "delete", "table", "inet", fw.table)
}
