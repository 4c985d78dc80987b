package main

import "github.com/spf13/cobra"

func newTestenvCmd() *cobra.Command { return nil }
