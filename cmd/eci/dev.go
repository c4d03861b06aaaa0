package main

import (
	"github.com/spf13/cobra"
)

func newDevCommand() *cobra.Command {
	dev := &cobra.Command{
		Use:   "dev",
		Short: "Developer tools: the local test bed outside tests",
	}
	dev.AddCommand(newDevBedCommand())
	return dev
}
