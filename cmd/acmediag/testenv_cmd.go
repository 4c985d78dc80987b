package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/acmediag/acmediag/testenv"
)

// newTestenvCmd runs the hermetic universe: the DNS world the tests, the
// benchmarks and the demo use, all on loopback.
func newTestenvCmd() *cobra.Command {
	var port int
	acme := true
	cmd := &cobra.Command{
		Use:   "testenv",
		Short: "Run the hermetic test universe on loopback (root, TLDs, authoritative servers, Unbound)",
		Long: `testenv starts the universe acmediag's tests run against — a root, TLD and
authoritative servers on their own 127.53.x.y addresses, DNSSEC-signed zones,
servers with faults, and real Unbound resolvers — and keeps it running until
interrupted. It prints the flags that point 'acmediag diagnose' at it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := testenv.Start(cmd.Context(), testenv.Options{Port: port, ACME: acme})
			if err != nil {
				return err
			}
			defer u.Close()
			w := cmd.OutOrStdout()
			if acme {
				fmt.Fprintf(w, "Pebble (ACME) for the CA's own verdict: %s\n", strings.Join(u.ACMEArgs(), " "))
			}
			fmt.Fprintf(w, "universe running; try:\n  acmediag diagnose %s\n\nscenarios:\n", strings.Join(universeFlags(u), " ")+" NAME")
			for _, sc := range testenv.Catalogue() {
				fmt.Fprintf(w, "  %-28s %s\n", sc.Domain, sc.Description)
			}
			fmt.Fprintln(w, "\nCtrl-C stops it.")
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.PersistentFlags().IntVar(&port, "port", 0, "DNS port of every server (default 53 as root, else 10053; web ports follow it)")
	cmd.PersistentFlags().BoolVar(&acme, "acme", true, "also run Pebble, Let's Encrypt's ACME test server, validating against the universe")
	demo := &cobra.Command{
		Use:   "demo",
		Short: "Start the universe and diagnose every scenario in it, printing each report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := testenv.Start(cmd.Context(), testenv.Options{Port: port, ACME: acme})
			if err != nil {
				return err
			}
			defer u.Close()
			return runDemo(cmd, u)
		},
	}
	cmd.AddCommand(demo)
	return cmd
}

// universeFlags are the diagnose flags common to every scenario.
func universeFlags(u *testenv.Universe) []string {
	var out []string
	for _, a := range u.DiagnoseArgs(testenv.Scenario{}) {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

func runDemo(cmd *cobra.Command, u *testenv.Universe) error {
	w := cmd.OutOrStdout()
	scenarios := testenv.Catalogue()
	var failing, passing int
	for i, sc := range scenarios {
		if cmd.Context().Err() != nil {
			return cmd.Context().Err()
		}
		args := []string{"diagnose", "--log-level", "error"}
		if slices.Contains(sc.Args, "http-01") && !sc.Vantages {
			// The CA's own verdict next to acmediag's.
			args = append(args, u.ACMEArgs()...)
		}
		args = append(args, u.DiagnoseArgs(sc)...)
		fmt.Fprintf(w, "\n━━ %d/%d %s — %s\n$ acmediag %s\n\n", i+1, len(scenarios), sc.Name, sc.Description, shellJoin(args))
		code := run(cmd.Context(), args, w, cmd.ErrOrStderr())
		if code == exitFindings {
			failing++
		} else {
			passing++
		}
	}
	fmt.Fprintf(w, "\ndemo: %d scenarios, %d would pass, %d would fail at Let's Encrypt\n", len(scenarios), passing, failing)
	return nil
}

func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " *\"';") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
