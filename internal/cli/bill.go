package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
)

func newBillCommand(f *Flags) *cobra.Command {
	var q client.BillQuery
	cmd := &cobra.Command{
		Use:   "bill",
		Short: "Show metered usage and cost per group, tenant, tag, virtual node or size over a period",
		Long: `Show what the groups your token may see were billed for (a tenant: its own),
rated with the server's price book: billed seconds (Pending, then running),
vCPU-, GiB-, GPU- and extra-storage-seconds at the size they ran at, and the
cost; the total is rounded to the cent (docs/billing.md).

  eci bill --from 2026-11-01 --to 2026-12-01 --by tag:team --granularity day -o csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch f.Output { // before the request
			case "", "json", "yaml", "csv":
			default:
				return fmt.Errorf("-o %q: allowed: json, yaml, csv (or none: a table)", f.Output)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			b, err := c.Bill(cmd.Context(), q)
			if err != nil {
				return err
			}
			if f.Output == "csv" {
				return billCSV(cmd.OutOrStdout(), b)
			}
			return output(cmd.OutOrStdout(), f.Output, b, func(tw *tabwriter.Writer, _ bool) { billTable(tw, b) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&q.From, "from", "", "start: a date (2026-11-01, UTC) or an RFC 3339 time (default: the start of this month)")
	fl.StringVar(&q.To, "to", "", "end, not included (default: now)")
	fl.StringVar(&q.Granularity, "granularity", "", "a line per hour, day or month (default: one for the period)")
	fl.StringVar(&q.By, "by", "", "what a line is of: group (default), tenant, vnode, size or tag:KEY")
	fl.StringArrayVar(&q.Tags, "tag", nil, "only the groups with this tag (key=value; repeat for several)")
	fl.StringVarP(&f.Output, "output", "o", "", "json, yaml or csv")
	return cmd
}

var billColumns = []string{"PERIOD", "KEY", "GROUPS", "PENDING-S", "RUNNING-S", "VCPU-S", "GIB-S", "GPU-S", "STORAGE-GIB-S", "AMOUNT"}

func billRow(b *apiv1.Bill, l apiv1.BillLine) []string {
	period := b.From.Format(time.RFC3339) + "/" + b.To.Format(time.RFC3339)
	if l.Period != nil {
		period = l.Period.Format(time.RFC3339)
	}
	return []string{period, l.Key, strconv.Itoa(l.Groups), strconv.FormatInt(l.PendingSeconds, 10), strconv.FormatInt(l.RunningSeconds, 10),
		strconv.FormatFloat(float64(l.MilliCPUSeconds)/1000, 'f', -1, 64), strconv.FormatFloat(float64(l.MemoryMiBSeconds)/1024, 'f', -1, 64),
		strconv.FormatInt(l.GPUSeconds, 10), strconv.FormatInt(l.ExtraStorageGiBSeconds, 10), l.Amount}
}

func billTable(tw *tabwriter.Writer, b *apiv1.Bill) {
	cols := make([]any, len(billColumns))
	for i, c := range billColumns {
		cols[i] = c
	}
	row(tw, cols...)
	for _, l := range b.Lines {
		r := billRow(b, l)
		vals := make([]any, len(r))
		for i, v := range r {
			vals[i] = v
		}
		row(tw, vals...)
	}
	fmt.Fprintf(tw, "TOTAL (%s, rounded to the cent)\t\t\t\t\t\t\t\t\t%s\n", b.Currency, b.Total)
}

func billCSV(w io.Writer, b *apiv1.Bill) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(append(billColumns, "CURRENCY"))
	for _, l := range b.Lines {
		_ = cw.Write(append(billRow(b, l), b.Currency))
	}
	_ = cw.Write([]string{"TOTAL", "", "", "", "", "", "", "", "", b.Total, b.Currency})
	cw.Flush()
	return cw.Error()
}
