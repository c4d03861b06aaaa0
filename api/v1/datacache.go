package v1

import "time"

// A data cache is a data set (a model, a corpus) fetched once per host and
// kept there as a read-only copy (docs/fast-start.md): the groups of a
// burst that need it mount the host's copy instead of each downloading it.
// A tenant names a cache by bucket and path; a group mounts it with a
// DataCacheVolume (a pod: the annotation k8s.aliyun.com/eci-data-cache-bucket
// and a hostPath volume of the cache's path). The server keeps the caches
// and their status; each agent fetches the caches its host is given, and a
// cache a group needs on a host that lacks it, once.

// DataCache is one data cache of a tenant.
type DataCache struct {
	Metadata ObjectMeta      `json:"metadata"`
	Spec     DataCacheSpec   `json:"spec"`
	Status   DataCacheStatus `json:"status,omitzero"`
}

// DataCacheSpec is what a tenant asks for.
type DataCacheSpec struct {
	// Bucket groups a tenant's caches (default DefaultDataCacheBucket).
	Bucket string `json:"bucket,omitempty"`
	// Path names the cache in its bucket: an absolute path ("/models/m1"),
	// which a pod gives as its hostPath volume's path.
	Path       string          `json:"path"`
	DataSource DataCacheSource `json:"dataSource"`
	// Size, in GiB, bounds the data on a host (default
	// DefaultDataCacheSize): a fetch that exceeds it fails.
	Size int `json:"size,omitempty"`
	// RetentionDays: the cache is removed this many days after it was made
	// (0: kept until deleted).
	RetentionDays int `json:"retentionDays,omitempty"`
	// HostsPerZone: how many hosts of each zone fetch the data ahead (0:
	// every host of the pool). A group placed elsewhere fetches it there,
	// once for the host.
	HostsPerZone int `json:"hostsPerZone,omitempty"`
}

// DataCacheSource is where the data comes from.
type DataCacheSource struct {
	// Type is DataSourceURL.
	Type string `json:"type"`
	// Options of the type. URL: "url" (http or https, required), "format"
	// ("file": one file, named by the URL's last path element or "name";
	// "tar" or "tar.gz": an archive unpacked; by default from the URL's
	// suffix), "sha256" (hex digest the download must have).
	Options map[string]string `json:"options,omitempty"`
}

// Data source types and formats.
const (
	DataSourceURL = "URL"

	DataFormatFile  = "file"
	DataFormatTar   = "tar"
	DataFormatTarGz = "tar.gz"
)

// Limits of data caches.
const (
	DefaultDataCacheBucket = "default"
	DefaultDataCacheSize   = 20
	MaxDataCacheSize       = 500
	MaxDataCachePath       = 256
	MaxDataCacheURL        = 2048
	// MaxDataCacheEntries bounds an archive's files, directories and links.
	MaxDataCacheEntries = 100000
)

// DataCachePhase is where a cache stands.
type DataCachePhase string

const (
	// DataCacheCreating: no host holds the data yet.
	DataCacheCreating DataCachePhase = "Creating"
	// DataCacheLoading: some hosts given the cache hold the data, others
	// are fetching it.
	DataCacheLoading DataCachePhase = "Loading"
	// DataCacheAvailable: every host given the cache holds the data.
	DataCacheAvailable DataCachePhase = "Available"
	// DataCacheFailed: no host could fetch the data (the message says
	// why); the hosts try again.
	DataCacheFailed DataCachePhase = "Failed"
)

// DataCacheStatus is kept by the server from the hosts' reports.
type DataCacheStatus struct {
	Phase DataCachePhase `json:"phase,omitempty"`
	// Hosts given the cache, and those of them holding the data.
	Hosts      int `json:"hosts"`
	HostsReady int `json:"hostsReady"`
	// SizeBytes is the data's size on a host.
	SizeBytes       int64      `json:"sizeBytes,omitempty"`
	Message         string     `json:"message,omitempty"`
	LastUpdatedTime time.Time  `json:"lastUpdatedTime,omitzero"`
	ExpireDateTime  *time.Time `json:"expireDateTime,omitempty"`
	// HostStatuses says, for each host given the cache, whether it holds
	// the data, and why not.
	HostStatuses []DataCacheHost `json:"hostStatuses,omitempty"`
}

// DataCacheHost is one host's part of a cache.
type DataCacheHost struct {
	Host    string `json:"host"`
	Ready   bool   `json:"ready"`
	Message string `json:"message,omitempty"`
}

// DataCacheVolume mounts a data cache of the group's tenant, read-only.
// The group gives Bucket (default DefaultDataCacheBucket) and Path; the
// server fills in the rest from the cache when it takes the group.
type DataCacheVolume struct {
	Bucket string `json:"bucket,omitempty"`
	Path   string `json:"path"`
	// ID, Source and Size are the cache's (set by the server: what the
	// group's host fetches if it lacks the data).
	ID     string           `json:"id,omitempty"`
	Source *DataCacheSource `json:"source,omitempty"`
	Size   int              `json:"size,omitempty"`
}

// HostDataCaches is the answer to GET /v1/hosts/{name}/datacaches: the
// caches the host fetches ahead (its own token only).
type HostDataCaches struct {
	Items []DataCache `json:"items"`
}

// HostData is the body of PUT /v1/hosts/{name}/datacaches: the caches the
// host holds and those it could not fetch.
type HostData struct {
	Caches []HostDataCache    `json:"caches"`
	Failed []DataFetchFailure `json:"failed,omitempty"`
}

// HostDataCache is a cache a host holds.
type HostDataCache struct {
	ID        string `json:"id"`
	SizeBytes int64  `json:"sizeBytes"`
}

// DataFetchFailure is a cache a host could not fetch, with why.
type DataFetchFailure struct {
	Cache   string `json:"cache"`
	Message string `json:"message"`
}

// MaxHostDataCaches bounds a host's report (and its failures).
const MaxHostDataCaches = 2000
