package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, gz bool, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	} = nopCloser{&buf}
	if gz {
		w = gzip.NewWriter(&buf)
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// serveData serves files by path on loopback and counts the requests.
func serveData(t *testing.T, files map[string][]byte) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Has("length") {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func urlSource(u string, opts ...string) apiv1.DataCacheSource {
	o := map[string]string{"url": u}
	for i := 0; i+1 < len(opts); i += 2 {
		o[opts[i]] = opts[i+1]
	}
	return apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: o}
}

func noRoomCheck(int64) error { return nil }

// A tenant's URL never makes the host connect to its own or loopback
// addresses (a redirect neither), unless the operator allowed the host.
func TestDataFetchRefusesHostAddresses(t *testing.T) {
	srv, hits := serveData(t, map[string][]byte{"/d.bin": []byte("data")})
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	_, err := fetchData(context.Background(), dataClient(dataPolicy{}), dir, "edc-0000000000000001", urlSource(srv.URL+"/d.bin?token=s3cret"), 1<<20, noRoomCheck)
	if err == nil || !strings.Contains(err.Error(), "this host's own, or on a private, local or reserved network") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("fetch from loopback: %v; want refused, without the URL's query", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the server was reached %d times", hits.Load())
	}
	// An allowed host redirecting to one that is not: refused at the
	// redirect's connection.
	redirect := httptest.NewServer(http.RedirectHandler(srv.URL+"/d.bin", http.StatusFound))
	defer redirect.Close()
	rhost := strings.TrimPrefix(redirect.URL, "http://")
	if _, err := fetchData(context.Background(), dataClient(dataPolicy{hosts: []string{rhost}}), dir, "edc-0000000000000001", urlSource(redirect.URL+"/x"), 1<<20, noRoomCheck); err == nil || hits.Load() != 0 {
		t.Fatalf("redirect to a host not allowed: %v, %d hits", err, hits.Load())
	}
	size, err := fetchData(context.Background(), dataClient(dataPolicy{hosts: []string{host}}), dir, "edc-0000000000000001", urlSource(srv.URL+"/d.bin"), 1<<20, noRoomCheck)
	if err != nil || size != 4 {
		t.Fatalf("allowed host: %d bytes, %v", size, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "edc-0000000000000001", "data", "d.bin")); err != nil || string(got) != "data" {
		t.Fatalf("the file: %q, %v", got, err)
	}
}

// An archive unpacks to read-only files (no set-id bits), read-only
// directories and links, all inside the cache's directory whatever the
// entries' names and links say; devices are refused.
func TestDataFetchArchive(t *testing.T) {
	outside := t.TempDir()
	archive := makeTar(t, true,
		tarEntry{name: "model/", typ: tar.TypeDir, mode: 0o777},
		tarEntry{name: "model/weights.bin", body: "weights"},
		tarEntry{name: "model/run.sh", body: "#!/bin/sh\n", mode: 0o4777},
		tarEntry{name: "deep/a/b/c.txt", body: "c"},
		tarEntry{name: "../escape.txt", body: "up"},
		tarEntry{name: "/abs.txt", body: "abs"},
		tarEntry{name: "out", typ: tar.TypeSymlink, link: outside},
		tarEntry{name: "out/planted.txt", body: "planted"},
		tarEntry{name: "model/latest", typ: tar.TypeSymlink, link: "weights.bin"},
		tarEntry{name: "model/hard", typ: tar.TypeLink, link: "model/weights.bin"},
	)
	srv, _ := serveData(t, map[string][]byte{"/m.tar.gz": archive, "/dev.tar": makeTar(t, false, tarEntry{name: "null", typ: tar.TypeChar})})
	dir, hc := t.TempDir(), dataClient(dataPolicy{hosts: []string{strings.TrimPrefix(srv.URL, "http://")}})
	_, err := fetchData(context.Background(), hc, dir, "edc-0000000000000002", urlSource(srv.URL+"/m.tar.gz"), 1<<20, noRoomCheck)
	if err == nil || !strings.Contains(err.Error(), `"out/planted.txt"`) {
		t.Fatalf("an entry through a link out of the cache: %v; want refused naming it", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("written outside the cache: %v", entries)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed fetch left %v", entries)
	}
	good := makeTar(t, true, tarEntry{name: "model/", typ: tar.TypeDir, mode: 0o777},
		tarEntry{name: "model/weights.bin", body: "weights"},
		tarEntry{name: "model/run.sh", body: "#!/bin/sh\n", mode: 0o4777},
		tarEntry{name: "deep/a/b/c.txt", body: "c"},
		tarEntry{name: "../escape.txt", body: "up"},
		tarEntry{name: "/abs.txt", body: "abs"},
		tarEntry{name: "model/latest", typ: tar.TypeSymlink, link: "weights.bin"},
		tarEntry{name: "model/hard", typ: tar.TypeLink, link: "model/weights.bin"})
	srv2, _ := serveData(t, map[string][]byte{"/m.tgz": good})
	hc = dataClient(dataPolicy{hosts: []string{strings.TrimPrefix(srv2.URL, "http://")}})
	size, err := fetchData(context.Background(), hc, dir, "edc-0000000000000002", urlSource(srv2.URL+"/m.tgz"), 1<<20, noRoomCheck)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "edc-0000000000000002", "data")
	if size != int64(len("weights")+len("#!/bin/sh\n")+len("c")+len("up")+len("abs")) {
		t.Fatalf("size %d", size)
	}
	for name, want := range map[string]os.FileMode{"model/weights.bin": 0o444, "model/run.sh": 0o555, "deep/a/b/c.txt": 0o444, "escape.txt": 0o444, "abs.txt": 0o444,
		"model": 0o555 | os.ModeDir, "deep": 0o555 | os.ModeDir, "deep/a/b": 0o555 | os.ModeDir, ".": 0o555 | os.ModeDir} {
		fi, err := os.Lstat(filepath.Join(data, name))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, %v; want mode %v", name, fi.Mode(), err, want)
		}
	}
	if got, err := os.ReadFile(filepath.Join(data, "model/latest")); err != nil || string(got) != "weights" {
		t.Errorf("the link: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape.txt")); err == nil {
		t.Error("../escape.txt written above the data")
	}
	_, err = fetchData(context.Background(), dataClient(dataPolicy{hosts: []string{strings.TrimPrefix(srv.URL, "http://")}}), dir, "edc-0000000000000003", urlSource(srv.URL+"/dev.tar"), 1<<20, noRoomCheck)
	if err == nil || !strings.Contains(err.Error(), "allowed: files, directories and links") {
		t.Fatalf("a device entry: %v", err)
	}
}

// The download and what it unpacks to are bounded by the cache's size; a
// wrong digest is refused; nothing of a refused fetch stays.
func TestDataFetchBounds(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 4<<20)
	bomb := makeTar(t, true, tarEntry{name: "zeros", body: string(big)})
	sum := sha256.Sum256([]byte("data"))
	srv, _ := serveData(t, map[string][]byte{"/big.bin": big, "/bomb.tar.gz": bomb, "/d.bin": []byte("data")})
	hc, dir := dataClient(dataPolicy{hosts: []string{strings.TrimPrefix(srv.URL, "http://")}}), t.TempDir()
	for _, c := range []struct {
		src  apiv1.DataCacheSource
		want string
	}{
		{urlSource(srv.URL + "/big.bin"), "than the cache's size"},
		{urlSource(srv.URL + "/big.bin?length"), fmt.Sprintf("%d bytes, more than the cache's size", len(big))},
		{urlSource(srv.URL + "/bomb.tar.gz"), "the data unpacked is larger than the cache's size"},
		{urlSource(srv.URL+"/d.bin", "sha256", strings.Repeat("0", 64)), "its sha256 is " + hex.EncodeToString(sum[:])},
		{urlSource(srv.URL + "/missing"), "404"},
	} {
		if len(bomb) >= 1<<20 {
			t.Fatalf("the bomb is %d bytes compressed", len(bomb))
		}
		_, err := fetchData(context.Background(), hc, dir, "edc-0000000000000004", c.src, 1<<20, noRoomCheck)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.src.Options["url"], err, c.want)
		}
	}
	if _, err := fetchData(context.Background(), hc, dir, "edc-0000000000000004", urlSource(srv.URL+"/d.bin"), 1<<20, func(int64) error { return os.ErrNoDeadline }); err == nil {
		t.Error("fetched without room")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("refused fetches left %v", entries)
	}
	if _, err := fetchData(context.Background(), hc, dir, "edc-0000000000000004", urlSource(srv.URL+"/d.bin", "sha256", hex.EncodeToString(sum[:])), 1<<20, noRoomCheck); err != nil {
		t.Fatalf("the right digest: %v", err)
	}
}

// A burst of groups on one host fetches a cache once: the first starts
// the fetch, the others wait for it and are woken when it ends; a failed
// fetch is not tried again by every group at once.
func TestDataCacheFetchedOnce(t *testing.T) {
	srv, hits := serveData(t, map[string][]byte{"/d.bin": bytes.Repeat([]byte("d"), 1<<20)})
	var mu sync.Mutex
	woken := map[string]bool{}
	cfg := &Config{StateDir: t.TempDir(), AllowedLocalDataHosts: []string{strings.TrimPrefix(srv.URL, "http://")}}
	d, err := newDataCaches(cfg, func(groups []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range groups {
			woken[g] = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	src := urlSource(srv.URL + "/d.bin")
	vol := &apiv1.DataCacheVolume{Path: "/d", ID: "edc-0000000000000005", Source: &src, Size: 1}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.ensure(ctx, vol, "g"+string(rune('a'+i))); err != nil && err != errDataFetching {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for d.ensure(ctx, vol, "late") != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.ensure(ctx, vol, "after"); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d GETs for 20 groups; want 1", hits.Load())
	}
	mu.Lock()
	for i := range 20 {
		if g := "g" + string(rune('a'+i)); !woken[g] {
			t.Errorf("group %s waited and was not woken", g)
		}
	}
	mu.Unlock()
	held, err := d.held()
	if err != nil || held[vol.ID].SizeBytes != 1<<20 {
		t.Fatalf("held %+v, %v", held, err)
	}
	// A failing source: one GET, then the failure is the answer for a while.
	bad := urlSource(srv.URL + "/missing")
	badVol := &apiv1.DataCacheVolume{Path: "/x", ID: "edc-0000000000000006", Source: &bad, Size: 1}
	_ = d.ensure(ctx, badVol, "g1")
	deadline = time.Now().Add(30 * time.Second)
	for err = d.ensure(ctx, badVol, "g2"); err == errDataFetching && time.Now().Before(deadline); err = d.ensure(ctx, badVol, "g2") {
		time.Sleep(20 * time.Millisecond)
	}
	for range 5 {
		if err := d.ensure(ctx, badVol, "g3"); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("a failed cache: %v", err)
		}
	}
	if hits.Load() != 2 {
		t.Fatalf("%d GETs; want 2 (the failed source once)", hits.Load())
	}
}

// Where a tenant's URL may make the host connect: public unicast
// addresses only, unless the operator allowed a network (or a name). The
// private and local addresses below are only checked, never reached.
func TestDataPolicy(t *testing.T) {
	p := dataPolicy{networks: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16")}, protected: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	for addr, allowed := range map[string]bool{
		"127.0.0.1": false, "::1": false, "169.254.169.254": false, "fe80::1": false, "0.0.0.0": false, "::": false,
		"100.100.100.200": false, // a cloud's metadata service (shared address space)
		"198.18.0.1":      false, "240.0.0.1": false, "224.0.0.1": false, "ff02::1": false,
		"64:ff9b::a00:1": false, "2002:a00:1::1": false, "::ffff:127.0.0.1": false,
		"203.0.113.7": false, // --nat-protected
		"198.19.3.4":  true,  // --allowed-data-network (198.18/15 is refused otherwise)
		"8.8.8.8":     true, "2001:4860:4860::8888": true,
	} {
		if err := p.check(netip.MustParseAddr(addr)); (err == nil) != allowed {
			t.Errorf("%s: %v, want allowed %v", addr, err, allowed)
		}
	}
	// The private networks (RFC 1918, and IPv6's unique local addresses),
	// made from their bytes: only checked, as above.
	for _, addr := range []netip.Addr{
		netip.AddrFrom4([4]byte{10, 1, 2, 3}), netip.AddrFrom4([4]byte{172, 16, 0, 9}), netip.AddrFrom4([4]byte{192, 168, 1, 1}),
		netip.AddrFrom16([16]byte{0: 0xfd, 15: 1}),
	} {
		if err := p.check(addr); err == nil {
			t.Errorf("%s: allowed, want refused (a private address)", addr)
		}
	}
}

// A failing source is tried again after a back-off that doubles, and its
// failure is the answer meanwhile, without the host's paths.
func TestDataFetchBackoff(t *testing.T) {
	d, err := newDataCaches(&Config{StateDir: t.TempDir()}, func([]string) {})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{dataRetryFirst, 2 * dataRetryFirst, 4 * dataRetryFirst} {
		before := time.Now()
		d.mu.Lock()
		d.failedLocked("edc-0000000000000007", &os.PathError{Op: "mkdirat", Path: filepath.Join(d.dir, ".fetch-x"), Err: os.ErrPermission})
		f := *d.failed["edc-0000000000000007"]
		d.mu.Unlock()
		if got := f.next.Sub(before); got < want || got > want+time.Second {
			t.Errorf("failure %d: tried again after %v, want %v", i+1, got, want)
		}
		if strings.Contains(f.msg, d.dir) || !strings.Contains(f.msg, "the host could not store the data") {
			t.Errorf("the tenant reads %q", f.msg)
		}
	}
}

// The disk's room is asked again as the data is written, not only before
// the download (an archive unpacks larger than it downloads).
func TestDataWriterAsksRoom(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	asked := 0
	w := &dataWriter{root: root, left: 1 << 20, every: 1 << 10, room: func(n int64) error {
		if asked++; asked > 1 {
			return errors.New("disk full")
		}
		return nil
	}}
	if err := w.file("f", 0o644, bytes.NewReader(make([]byte, 64<<10))); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("writing 64 KiB asking every 1 KiB, the room gone after the first ask: %v", err)
	}
}
