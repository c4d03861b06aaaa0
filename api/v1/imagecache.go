package v1

import "time"

// An image cache is a set of images pulled ahead to the pool's hosts
// (docs/fast-start.md), so that a group made of them starts without
// pulling: the placer prefers a host that holds a group's images, and
// names the tenant's cache that held them (status.matchedImageCache, a
// pod's k8s.aliyun.com/eci-matched-image-cache). The server keeps the
// caches and their status; each agent pulls the images of the caches its
// host is given and reports the images it holds.

// ImageCache is one cache of a tenant.
type ImageCache struct {
	Metadata ObjectMeta       `json:"metadata"`
	Spec     ImageCacheSpec   `json:"spec"`
	Status   ImageCacheStatus `json:"status,omitzero"`
}

// ImageCacheSpec is what a tenant asks for.
type ImageCacheSpec struct {
	// Images to keep (1 to MaxImageCacheImages references).
	Images []string `json:"images"`
	// ImageRegistryCredentials pull private images, as a group's do.
	// Write-only: the API returns no password. An image pulled with them
	// is the tenant's on the host: another tenant's group pulls it again
	// with its own credentials before it runs it.
	ImageRegistryCredentials []RegistryCredential `json:"imageRegistryCredentials,omitempty"`
	// ImageCacheSize, in GiB, bounds the images' size on a host (default
	// DefaultImageCacheSize): a host does not pull past it.
	ImageCacheSize int `json:"imageCacheSize,omitempty"`
	// RetentionDays: the cache is removed this many days after it was made
	// (0: kept until deleted).
	RetentionDays int `json:"retentionDays,omitempty"`
	// HostsPerZone: how many hosts of each zone keep the images (0: every
	// host of the pool).
	HostsPerZone int `json:"hostsPerZone,omitempty"`
}

// Limits of image caches.
const (
	MaxImageCacheImages    = 20
	DefaultImageCacheSize  = 20
	MaxImageCacheSize      = 200
	MaxImageCacheRetention = 3650
	MaxImageCacheHosts     = 1000
	MaxImageRefLength      = 512
)

// ImageCachePhase is where a cache stands.
type ImageCachePhase string

const (
	// ImageCacheCreating: no host holds all its images yet.
	ImageCacheCreating ImageCachePhase = "Creating"
	// ImageCacheReady: every host given the cache holds all its images.
	ImageCacheReady ImageCachePhase = "Ready"
	// ImageCacheUpdating: some hosts hold all its images, others are
	// pulling (a host joined, or the images changed).
	ImageCacheUpdating ImageCachePhase = "Updating"
	// ImageCacheFailed: an image could not be pulled on any host given the
	// cache (its message says why); the hosts try again.
	ImageCacheFailed ImageCachePhase = "Failed"
)

// ImageCacheStatus is kept by the server from the hosts' reports.
type ImageCacheStatus struct {
	Phase ImageCachePhase `json:"phase,omitempty"`
	// Progress is the share of (image, host) pairs in place: "75%".
	Progress string `json:"progress,omitempty"`
	// Hosts given the cache, and those of them holding all its images.
	Hosts      int `json:"hosts"`
	HostsReady int `json:"hostsReady"`
	// SizeBytes is the images' size on a host that holds them all.
	SizeBytes int64  `json:"sizeBytes,omitempty"`
	Message   string `json:"message,omitempty"`
	// LastUpdatedTime is when the status last changed; ExpireDateTime
	// when the cache is removed (retentionDays); LastMatchedTime when a
	// group last matched it.
	LastUpdatedTime time.Time  `json:"lastUpdatedTime,omitzero"`
	ExpireDateTime  *time.Time `json:"expireDateTime,omitempty"`
	LastMatchedTime *time.Time `json:"lastMatchedTime,omitempty"`
	// HostStatuses says, for each host given the cache, how many of its
	// images it holds, and why it lacks one.
	HostStatuses []ImageCacheHost `json:"hostStatuses,omitempty"`
}

// ImageCacheHost is one host's part of a cache.
type ImageCacheHost struct {
	Host    string `json:"host"`
	Images  int    `json:"images"`
	Ready   bool   `json:"ready"`
	Message string `json:"message,omitempty"`
}

// HostImageCaches is the answer to GET /v1/hosts/{name}/imagecaches: the
// caches the host keeps, with their credentials (its own token only).
type HostImageCaches struct {
	Items []ImageCache `json:"items"`
}

// HostImages is the body of PUT /v1/hosts/{name}/images: what the agent
// holds and what it could not pull.
type HostImages struct {
	Images []HostImage `json:"images"`
	// Failed are the caches' images the host could not pull, with why.
	Failed []ImagePullFailure `json:"failed,omitempty"`
}

// HostImage is one image a host holds: its names (as containerd writes
// them: docker.io/library/busybox:1.36, repo@sha256:...) and its size.
type HostImage struct {
	Refs      []string `json:"refs"`
	SizeBytes int64    `json:"sizeBytes"`
	// PrivateTo are the tenants that pulled it with a registry credential:
	// only their groups run the host's copy (and it counts for no other
	// tenant's placement or cache). Empty: anyone's.
	PrivateTo []string `json:"privateTo,omitempty"`
}

// ImagePullFailure is a cache's image a host could not pull.
type ImagePullFailure struct {
	Cache   string `json:"cache"`
	Image   string `json:"image"`
	Message string `json:"message"`
}

// MaxHostImages bounds a host's report; MaxHostImageFailures its
// failures (one a cache).
const (
	MaxHostImages        = 2000
	MaxHostImageFailures = 200
)
