package agent

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Fetching a data cache's data (datacache.go) for a tenant, on the host's
// network: the agent is the client and the tenant reads what it fetched,
// so what a tenant's URL may make it do is bounded here.
//   - Where it connects: http and https only, no proxy, and only to global
//     unicast addresses, checked on every connection the client makes
//     (redirects included, and after the name is resolved: no DNS
//     rebinding): never the host's own, loopback, link-local, multicast or
//     unspecified addresses, private networks (10/8, 172.16/12,
//     192.168/16, fc00::/7), shared address space (100.64/10: a cloud's
//     metadata service is there too), benchmark, reserved and 6to4 / NAT64
//     ranges (dataRefused), or the networks the operator protects from the
//     instances (--nat-protected). The operator allows a host by name
//     (--allowed-local-data-host) or a network (--allowed-data-network),
//     for a data server on the site's own network.
//   - How much: the download and what it unpacks to are each bounded by
//     the cache's size, an archive's entries by MaxDataCacheEntries; the
//     disk keeps its minimum free share, checked before and every
//     roomEvery bytes written; the whole fetch ends after fetchTimeout,
//     and a download with no byte for fetchIdle.
//   - What it writes: inside a fresh directory only (os.Root: no entry of
//     an archive, link or "..", reaches out of it), regular files,
//     directories and links only (no devices, no FIFOs), every file
//     read-only and without set-id bits, owned by root; the directory is
//     renamed into place once whole (a fetch cut short leaves nothing a
//     group mounts).
//   - What it says: errors name the URL without its query (a signed URL's
//     query is a credential), and no path or free space of the host.

// Bounds of one fetch of a data cache: its whole length, the longest
// wait for a byte, and how often the disk's free share is checked.
const (
	fetchTimeout = 30 * time.Minute
	fetchIdle    = 2 * time.Minute
	roomEvery    = 64 << 20
)

// dataRefused are the networks a data source may not be on unless the
// operator allowed it (with loopback, link-local, multicast, unspecified
// and private addresses, and the host's own).
var dataRefused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48"), netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("fec0::/10"), netip.MustParsePrefix("100::/64"),
}

// dataPolicy says where data may be fetched from.
type dataPolicy struct {
	hosts     []string       // names (host or host:port) allowed whatever their address
	networks  []netip.Prefix // networks allowed
	protected []netip.Prefix // networks refused (--nat-protected)
}

// check refuses ip unless it is a global unicast address of no refused
// network, or of an allowed one.
func (p dataPolicy) check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, n := range p.networks {
		if n.Contains(ip) {
			return nil
		}
	}
	refused := hostOwnAddr(ip, hostAddrs()) || !ip.IsGlobalUnicast() || ip.IsPrivate() ||
		slices.ContainsFunc(dataRefused, func(n netip.Prefix) bool { return n.Contains(ip) }) ||
		slices.ContainsFunc(p.protected, func(n netip.Prefix) bool { return n.Contains(ip) })
	if refused {
		return fmt.Errorf("data source address %s is this host's own, or on a private, local or reserved network: refused (the operator allows a data server with --allowed-local-data-host or --allowed-data-network)", ip)
	}
	return nil
}

// dataClient is the HTTP client of data fetches: connections only where
// p allows.
func dataClient(p dataPolicy) *http.Client {
	check := &net.Dialer{Timeout: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("data source address %q: %w", address, err)
		}
		return p.check(ap.Addr())
	}}
	allowed := p.hosts
	open := &net.Dialer{Timeout: 30 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if slices.Contains(allowed, addr) || slices.Contains(allowed, host) {
				return open.DialContext(ctx, network, addr)
			}
			return check.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		// The body as the server sent it: the digest is of those bytes,
		// and an archive stored gzip-encoded is still gunzipped once.
		DisableCompression: true,
		MaxIdleConns:       4,
		IdleConnTimeout:    30 * time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("more than 5 redirects")
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("a redirect to %s: allowed: http and https", req.URL.Scheme)
		}
		return nil
	}}
}

// shownURL is u without its query and user info (a signed URL's query is
// a credential): what errors and logs say.
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// dataRecord is what a fetched cache's directory says of it (ready.json).
type dataRecord struct {
	SizeBytes int64     `json:"sizeBytes"`
	FetchedAt time.Time `json:"fetchedAt"`
}

// fetchData fetches src into dir/id (its data in dir/id/data), bounded by
// limit bytes, while room says the disk has room for n bytes more (-1:
// unknown); it returns the data's size.
func fetchData(ctx context.Context, hc *http.Client, dir, id string, src apiv1.DataCacheSource, limit int64, room func(n int64) error) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	tmp, err := os.MkdirTemp(dir, ".fetch-"+id+"-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp) // (renamed away when whole)
	if err := os.Mkdir(filepath.Join(tmp, "data"), 0o755); err != nil {
		return 0, err
	}
	root, err := os.OpenRoot(filepath.Join(tmp, "data"))
	if err != nil {
		return 0, err
	}
	defer root.Close()
	w := &dataWriter{root: root, left: limit, room: room, every: roomEvery}
	if err := download(ctx, hc, src, w); err != nil {
		return 0, err
	}
	if err := w.seal(); err != nil {
		return 0, err
	}
	rec, _ := json.Marshal(dataRecord{SizeBytes: w.written, FetchedAt: time.Now().UTC()})
	if err := os.WriteFile(filepath.Join(tmp, "ready.json"), rec, 0o600); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, id)); err != nil {
		return 0, err
	}
	return w.written, nil
}

// download GETs src and writes it with w: one file, or an archive's
// entries; the download is bounded as w is, and checked against src's
// digest.
func download(ctx context.Context, hc *http.Client, src apiv1.DataCacheSource, w *dataWriter) error {
	raw := src.Options["url"]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(fetchIdle, cancel) // reset by every byte read
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return fmt.Errorf("data source %s: %w", shownURL(raw), err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // (its text repeats the URL, query and all)
		}
		return fmt.Errorf("GET %s: %w", shownURL(raw), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", shownURL(raw), resp.Status)
	}
	if resp.ContentLength > w.left {
		return fmt.Errorf("GET %s: %d bytes, more than the cache's size (%d bytes)", shownURL(raw), resp.ContentLength, w.left)
	}
	if err := w.room(resp.ContentLength); err != nil {
		return err
	}
	sum := sha256.New()
	body := &boundedReader{r: io.TeeReader(resp.Body, sum), left: w.left, what: "the download", read: func() { idle.Reset(fetchIdle) }}
	switch apiv1.DataFormat(src) {
	case apiv1.DataFormatTar:
		err = w.untar(body)
	case apiv1.DataFormatTarGz:
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(body); err == nil {
			err = w.untar(zr)
		}
	default:
		err = w.file(fileName(src), 0o444, body)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, body) // the rest (an archive's padding): the digest is of the whole
	}
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("no byte for %v, or the fetch took more than %v: %w", fetchIdle, fetchTimeout, err)
	}
	if err != nil {
		return fmt.Errorf("data source %s: %w", shownURL(raw), err)
	}
	if want := src.Options["sha256"]; want != "" && hex.EncodeToString(sum.Sum(nil)) != want {
		return fmt.Errorf("data source %s: its sha256 is %x, not %s", shownURL(raw), sum.Sum(nil), want)
	}
	return nil
}

// fileName is the name a one-file source's data gets: its "name" option,
// or the URL's last path element, or "data".
func fileName(src apiv1.DataCacheSource) string {
	if n := src.Options["name"]; n != "" {
		return n
	}
	if u, err := url.Parse(src.Options["url"]); err == nil {
		if b := path.Base(u.Path); b != "/" && b != "." && b != ".." && b != "" {
			return b
		}
	}
	return "data"
}

// boundedReader fails once more than left bytes are read; read, if set,
// is told of every read that brought bytes.
type boundedReader struct {
	r    io.Reader
	left int64
	what string
	read func()
}

func (b *boundedReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 && b.read != nil {
		b.read()
	}
	if b.left -= int64(n); b.left < 0 {
		return n, fmt.Errorf("%s is larger than the cache's size", b.what)
	}
	return n, err
}

// dataWriter writes a cache's files inside root, left bytes at most,
// asking room every every bytes written.
type dataWriter struct {
	root      *os.Root
	left      int64
	room      func(n int64) error
	every     int64
	written   int64
	sinceRoom int64
	entries   int
	dirs      map[string]bool // made writable while unpacking; sealed read-only after
}

// file writes one regular file: read-only, executable when mode says so,
// never set-id.
func (w *dataWriter) file(name string, mode int64, r io.Reader) error {
	perm := os.FileMode(0o444)
	if mode&0o111 != 0 {
		perm = 0o555
	}
	f, err := w.root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, roomReader{r: &boundedReader{r: r, left: w.left, what: "the data unpacked"}, w: w})
	w.left -= n
	w.written += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.root.Chmod(name, perm) // (an existing file kept its mode)
	}
	return err
}

// roomReader asks w's room every w.every bytes read.
type roomReader struct {
	r io.Reader
	w *dataWriter
}

func (c roomReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.w.sinceRoom += int64(n); c.w.sinceRoom >= c.w.every {
		c.w.sinceRoom = 0
		if rerr := c.w.room(0); rerr != nil {
			return n, rerr
		}
	}
	return n, err
}

// untar unpacks a tar stream: directories, regular files and links.
func (w *dataWriter) untar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		if w.entries++; w.entries > apiv1.MaxDataCacheEntries {
			return fmt.Errorf("archive: more than %d entries", apiv1.MaxDataCacheEntries)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			continue // the archive's own root
		}
		if dir := path.Dir(name); dir != "." {
			if err := w.mkdir(dir); err != nil {
				return fmt.Errorf("archive entry %q: %w", h.Name, err)
			}
		}
		switch h.Typeflag {
		case tar.TypeXGlobalHeader:
			// (pax settings for the entries after it, applied by the reader)
		case tar.TypeDir:
			err = w.mkdir(name)
		case tar.TypeReg:
			err = w.file(name, h.Mode, tr)
		case tar.TypeSymlink:
			err = w.root.Symlink(h.Linkname, name)
		case tar.TypeLink:
			err = w.root.Link(strings.TrimPrefix(path.Clean("/"+h.Linkname), "/"), name)
		default:
			err = fmt.Errorf("type %q; allowed: files, directories and links", h.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("archive entry %q: %w", h.Name, err)
		}
	}
}

// mkdir makes directory name and its parents, writable until seal.
func (w *dataWriter) mkdir(name string) error {
	if err := w.root.MkdirAll(name, 0o755); err != nil {
		return err
	}
	if w.dirs == nil {
		w.dirs = map[string]bool{}
	}
	for d := name; d != "." && !w.dirs[d]; d = path.Dir(d) {
		w.dirs[d] = true
	}
	return nil
}

// seal makes the directories read-only (deepest first) and the top too.
func (w *dataWriter) seal() error {
	dirs := slices.Collect(maps.Keys(w.dirs))
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		if err := w.root.Chmod(d, 0o555); err != nil {
			return err
		}
	}
	return w.root.Chmod(".", 0o555)
}

// hostOwnAddr tells whether ip is one of the host's own (own), loopback,
// link-local or unspecified: what a tenant must not make the host reach.
func hostOwnAddr(ip netip.Addr, own map[netip.Addr]bool) bool {
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || own[ip]
}
