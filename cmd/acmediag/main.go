// Command acmediag tells whether Let's Encrypt's validation of a name would
// pass, and why not: `acmediag diagnose NAME...` runs the checks once and
// prints a report; `acmediag version` prints the build.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes shared by every command.
const (
	exitOK       = 0
	exitFindings = 1 // at least one Error or Fatal finding
	exitUsage    = 2 // usage or configuration error
)

// usageError is a mistake in the command line or a file it names: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries a non-zero exit status that is not a failure of the
// command itself (diagnose found problems).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// execute runs one command line and returns the process exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "acmediag: %v\nRun 'acmediag %s --help' for usage.\n", err, subcommand(args))
		return exitUsage
	default:
		fmt.Fprintf(stderr, "acmediag: %v\n", err)
		return exitFindings
	}
}

func subcommand(args []string) string {
	for _, a := range args {
		if len(a) > 0 && a[0] != '-' {
			return a
		}
	}
	return ""
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "acmediag",
		Short: "Predict whether Let's Encrypt's ACME validation of a name will pass, and explain why not",
		Long: `acmediag checks everything an ACME validation at Let's Encrypt depends on —
DNS delegation and every authoritative server, CAA, DNSSEC, the dns-01 TXT
record — the way Let's Encrypt's own validation meets it, and says what to fix.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newDiagnoseCmd(), newVersionCmd())
	root.AddCommand(newDaemonCmd(), newAgentCmd())
	if c := newTestenvCmd(); c != nil {
		root.AddCommand(c)
	}
	return root
}
