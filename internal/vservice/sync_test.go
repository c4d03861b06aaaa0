package vservice

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// manyServices is a table of n virtual IPs with two backends each.
func manyServices(key string, n int) Table {
	t := Table{Key: key, Clients: addrs("198.18.60.2", "198.18.60.3")}
	for i := range n {
		t.Services = append(t.Services, vip("c1", fmt.Sprintf("198.19.%d.%d", i/250, 1+i%250), "",
			tcp(80, be(fmt.Sprintf("198.18.61.%d", 1+i%250), 8080), be(fmt.Sprintf("198.18.62.%d", 1+i%250), 8080))))
	}
	return t
}

// A change of one virtual IP writes that virtual IP's chains and its
// table's map, not the others'.
func TestSyncWritesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	fake := knftables.NewFake(knftables.IPv4Family, TableName)
	p := New(fake)
	tables := []Table{manyServices("a/c1", 200), manyServices("b/c1", 200)}
	if _, err := p.Sync(ctx, tables); err != nil {
		t.Fatal(err)
	}
	full := fake.LastTransaction.NumOperations()
	if n, err := p.Operations(ctx, tables); err != nil || n != 0 {
		t.Fatalf("an unchanged sync would write %d operations (%v)", n, err)
	}
	tables[0].Services[7] = vip("c1", tables[0].Services[7].Spec.IP, "", tcp(80, be("198.18.63.1", 8080)))
	if _, err := p.Sync(ctx, tables); err != nil {
		t.Fatal(err)
	}
	// The new backend's chain (add, flush, 2 rules), the port's chain
	// (flush, 1 rule), the table's map (flush, 200 elements), the two old
	// backend chains (flush, delete each): about 215 of about 4,000.
	changed := fake.LastTransaction.NumOperations()
	if changed > 230 || changed*10 > full {
		t.Errorf("one changed virtual IP wrote %d operations; the first sync %d", changed, full)
	}
	dump := fake.Dump()
	if !strings.Contains(dump, "dnat to 198.18.63.1:8080") || strings.Count(dump, "dnat to 198.18.61.8:8080") != 1 {
		t.Errorf("after the change the table holds:\n%s", grep(dump, "198.18.6"))
	}
	// A table that goes takes its objects along.
	if _, err := p.Sync(ctx, tables[:1]); err != nil {
		t.Fatal(err)
	}
	if dump := fake.Dump(); strings.Contains(dump, "t-"+hash("b/c1")) {
		t.Error("table b's objects are left after it went")
	}
}

// A table whose virtual IPs no instance of the host reaches is not written.
func TestTablesWithoutClientsAreLeftOut(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, TableName)
	tab := manyServices("a/c1", 3)
	tab.Clients = nil
	if _, err := New(fake).Sync(context.Background(), []Table{tab}); err != nil {
		t.Fatal(err)
	}
	if dump := fake.Dump(); strings.Contains(dump, "198.19.0.1") {
		t.Errorf("a table without clients was written:\n%s", dump)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A changed ClientIP affinity timeout takes effect: a set's timeout can't be
// changed, so the sets are new.
func TestAffinityTimeoutChanges(t *testing.T) {
	ctx := context.Background()
	fake := knftables.NewFake(knftables.IPv4Family, TableName)
	p := New(fake)
	tab := manyServices("a/c1", 1)
	tab.Services[0].Spec.SessionAffinity, tab.Services[0].Spec.SessionAffinityTimeoutSeconds = "ClientIP", 60
	if _, err := p.Sync(ctx, []Table{tab}); err != nil {
		t.Fatal(err)
	}
	if dump := fake.Dump(); !strings.Contains(dump, "timeout 60s") {
		t.Fatalf("no 60s affinity set:\n%s", dump)
	}
	tab.Services[0].Spec.SessionAffinityTimeoutSeconds = 3600
	if _, err := p.Sync(ctx, []Table{tab}); err != nil {
		t.Fatal(err)
	}
	if dump := fake.Dump(); !strings.Contains(dump, "timeout 3600s") || strings.Contains(dump, "timeout 60s") {
		t.Errorf("after the change to 1h:\n%s", grep(dump, "timeout"))
	}
}
