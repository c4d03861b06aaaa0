package cli

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

func TestBill(t *testing.T) {
	startWithHost(t)
	if _, err := eci(t, "vswitches", "create", "vsw-a", "--zone", "zone-a", "--cidr", "198.19.128.0/24"); err != nil {
		t.Fatal(err)
	}
	for _, team := range []string{"a", "a", "b"} {
		if out, err := eci(t, "run", "w"+team, "--image", "busybox", "--cpu", "1", "--memory", "2", "--tag", "team="+team); err != nil {
			t.Fatalf("run: %v %s", err, out)
		}
	}
	from := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	var bill apiv1.Bill
	poll.Eventually(t, 20*time.Second, "three groups billed for a second or more", func() error {
		out, err := eci(t, "bill", "--from", from, "--by", "tag:team", "-o", "json")
		if err != nil {
			return err
		}
		bill = apiv1.Bill{}
		if err := json.Unmarshal([]byte(out), &bill); err != nil {
			return err
		}
		if len(bill.Lines) != 2 || bill.Lines[0].Groups != 2 || bill.Lines[1].Groups != 1 || bill.Lines[1].PendingSeconds+bill.Lines[1].RunningSeconds < 1 {
			return errors.New(out)
		}
		return nil
	})
	// The default book's prices: 1 vCPU and 2 GiB a second.
	perSecond, _ := new(big.Rat).SetString("0.00000962")
	for _, l := range bill.Lines {
		secs := l.PendingSeconds + l.RunningSeconds
		want := new(big.Rat).Mul(perSecond, big.NewRat(secs, 1))
		if l.Amount != want.FloatString(10) || l.MilliCPUSeconds != 1000*secs || l.MemoryMiBSeconds != 2048*secs {
			t.Errorf("line %+v: want %s for %d seconds of 1 vCPU and 2 GiB", l, want.FloatString(10), secs)
		}
	}
	out, err := eci(t, "bill", "--from", from, "--tag", "team=b", "-o", "csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][1] != "KEY" || rows[2][0] != "TOTAL" || rows[1][10] != "USD" {
		t.Fatalf("csv of team b: %v\n%s", err, out)
	}
	if out, err = eci(t, "bill", "--from", from); err != nil || !strings.Contains(out, "TOTAL (USD, rounded to the cent)") {
		t.Fatalf("table: %v\n%s", err, out)
	}
	// A spending limit the default tenant's groups are past: a new one is
	// refused with 402, naming the limit.
	if out, err := eci(t, "tenants", "set", "default", "--spending-limit", "0.0000001"); err != nil || !strings.Contains(out, "spending limit 0.0000001 a month") {
		t.Fatalf("tenants set --spending-limit: %v %q", err, out)
	}
	if out, err := eci(t, "run", "more", "--image", "busybox"); !errdefs.IsPaymentRequired(err) || !strings.Contains(err.Error(), "spec.spendingLimit") {
		t.Fatalf("a group past the spending limit: %v %q", err, out)
	}
	if out, err := eci(t, "tenants", "set", "default", "--spending-limit", "lots"); err == nil || !strings.Contains(err.Error(), "spec.spendingLimit.amount") {
		t.Fatalf("a spending limit of lots: %v %q", err, out)
	}
	// A quota set alone keeps the limit; none removes it.
	if out, err := eci(t, "tenants", "set", "default", "--cpu", "100"); err != nil || !strings.Contains(out, "spending limit 0.0000001 a month") {
		t.Fatalf("a quota set alone: %v %q", err, out)
	}
	if out, err := eci(t, "tenants", "set", "default", "--spending-limit", "none"); err != nil || !strings.Contains(out, "spending limit none") {
		t.Fatalf("--spending-limit none: %v %q", err, out)
	}
	if out, err := eci(t, "run", "again", "--image", "busybox"); err != nil {
		t.Fatalf("a group without the limit: %v %q", err, out)
	}
	for args, says := range map[string]string{
		"bill --by colour":                       "by \"colour\": allowed: group, tenant, vnode, size, tag:KEY",
		"bill --from yesterday":                  "from",
		"bill --granularity week":                "granularity \"week\"",
		"bill --tag team":                        "allowed: key=value",
		"bill -o xml":                            "allowed: json, yaml, csv",
		"bill --from 2026-12-01 --to 2026-11-01": "must be after from",
	} {
		if _, err := eci(t, strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("eci %s: %v, want an error saying %q", args, err, says)
		}
	}
}
