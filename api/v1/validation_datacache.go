package v1

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidateDataCache checks a data cache to create.
func ValidateDataCache(c *DataCache) error {
	e := &errs{}
	e.dnsLabel("metadata.name", c.Metadata.Name, 63)
	e.labels("metadata.labels", c.Metadata.Labels, "label")
	s, p := &c.Spec, fpath("spec")
	if s.Bucket != "" {
		e.dnsLabel(p.child("bucket"), s.Bucket, 63)
	}
	e.dataCachePath(p.child("path"), s.Path)
	sp := p.child("dataSource")
	e.oneOf(sp.child("type"), s.DataSource.Type, DataSourceURL)
	if s.DataSource.Type == DataSourceURL {
		validateURLSource(e, sp.child("options"), s.DataSource.Options)
	}
	bound := func(f string, v, lo, hi int, unit string) {
		if v < lo || v > hi {
			e.add(p.child(f), "%d is not allowed; allowed: %d to %d%s", v, lo, hi, unit)
		}
	}
	bound("size", s.Size, 0, MaxDataCacheSize, fmt.Sprintf(" GiB (0: %d)", DefaultDataCacheSize))
	bound("retentionDays", s.RetentionDays, 0, MaxImageCacheRetention, " days (0: until deleted)")
	bound("hostsPerZone", s.HostsPerZone, 0, MaxImageCacheHosts, " (0: every host)")
	return e.result()
}

// validateURLSource checks a URL source's options.
func validateURLSource(e *errs, p fpath, o map[string]string) {
	for k := range o {
		e.oneOf(p.key(k), k, "url", "format", "sha256", "name")
	}
	raw := o["url"]
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		e.required(p.key("url"), "an http or https URL of the data")
	case len(raw) > MaxDataCacheURL || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
		e.add(p.key("url"), "%.80q is not allowed; allowed: an http or https URL with a host and no user info, at most %d characters", raw, MaxDataCacheURL)
	}
	e.oneOf(p.key("format"), o["format"], "", DataFormatFile, DataFormatTar, DataFormatTarGz)
	if d := o["sha256"]; d != "" && !sha256Hex.MatchString(d) {
		e.add(p.key("sha256"), "%.80q is not allowed; allowed: 64 lowercase hex digits", d)
	}
	if n := o["name"]; n != "" && (len(n) > 255 || strings.ContainsAny(n, "/\x00") || n == "." || n == "..") {
		e.add(p.key("name"), "%.80q is not allowed; allowed: a file name without /, at most 255 characters", n)
	}
}

// dataCachePath checks a data cache's path: absolute, clean, not "/".
func (e *errs) dataCachePath(p fpath, v string) {
	if v == "" || !path.IsAbs(v) || path.Clean(v) != v || v == "/" || len(v) > MaxDataCachePath || strings.ContainsAny(v, "\x00\n") {
		e.add(p, "%.80q is not allowed; allowed: an absolute, clean path other than /, at most %d characters (\"/models/m1\")", v, MaxDataCachePath)
	}
}

// DataFormat is the format of a URL source: its "format" option, or the
// URL path's suffix (.tar, .tar.gz, .tgz), or a file.
func DataFormat(src DataCacheSource) string {
	if f := src.Options["format"]; f != "" {
		return f
	}
	u, err := url.Parse(src.Options["url"])
	if err != nil {
		return DataFormatFile
	}
	switch p := strings.ToLower(u.Path); {
	case strings.HasSuffix(p, ".tar.gz"), strings.HasSuffix(p, ".tgz"):
		return DataFormatTarGz
	case strings.HasSuffix(p, ".tar"):
		return DataFormatTar
	}
	return DataFormatFile
}
