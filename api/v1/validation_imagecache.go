package v1

import (
	"fmt"
	"strings"
)

// ValidateImageCache checks a cache to create or replace.
func ValidateImageCache(c *ImageCache) error {
	e := &errs{}
	e.dnsLabel("metadata.name", c.Metadata.Name, 63)
	e.labels("metadata.labels", c.Metadata.Labels, "label")
	s, p := &c.Spec, fpath("spec")
	switch n := len(s.Images); {
	case n == 0:
		e.required(p.child("images"), "at least one image reference")
	case n > MaxImageCacheImages:
		e.add(p.child("images"), "%d images is too many; allowed: at most %d", n, MaxImageCacheImages)
	}
	seen := map[string]bool{}
	for i, img := range s.Images {
		switch {
		case strings.TrimSpace(img) == "" || strings.ContainsAny(img, " \t\n") || len(img) > MaxImageRefLength:
			e.add(p.child("images").index(i), "%q is not an image reference; allowed: [registry/]repository[:tag][@digest], at most %d characters", img, MaxImageRefLength)
		case seen[img]:
			e.add(p.child("images").index(i), "%q is given twice; allowed: each image once", img)
		}
		seen[img] = true
	}
	if n := len(s.ImageRegistryCredentials); n > MaxImageCacheImages {
		e.add(p.child("imageRegistryCredentials"), "%d credentials is too many; allowed: at most %d", n, MaxImageCacheImages)
	}
	for i, cr := range s.ImageRegistryCredentials {
		ip := p.child("imageRegistryCredentials").index(i)
		if cr.Server == "" {
			e.required(ip.child("server"), "the registry's host[:port]")
		}
		if len(cr.Server) > 253 || len(cr.Username) > 256 || len(cr.Password) > 4096 {
			e.add(ip, "too long; allowed: a server of at most 253 characters, a username of 256, a password of 4096")
		}
	}
	bound := func(f string, v, lo, hi int, unit string) {
		if v < lo || v > hi {
			e.add(p.child(f), "%d is not allowed; allowed: %d to %d%s", v, lo, hi, unit)
		}
	}
	bound("imageCacheSize", s.ImageCacheSize, 0, MaxImageCacheSize, fmt.Sprintf(" GiB (0: %d)", DefaultImageCacheSize))
	bound("retentionDays", s.RetentionDays, 0, MaxImageCacheRetention, " days (0: until deleted)")
	bound("hostsPerZone", s.HostsPerZone, 0, MaxImageCacheHosts, " (0: every host)")
	return e.result()
}
