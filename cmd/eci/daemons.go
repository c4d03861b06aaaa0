package main

import (
	"github.com/spf13/cobra"
)

func plannedCmd(cmd *cobra.Command, issue string) *cobra.Command {
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		return notImplementedError{what: "eci " + c.Name(), issue: issue}
	}
	return cmd
}
