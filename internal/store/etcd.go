package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config says where the data lives.
type Config struct {
	// DataDir holds the embedded etcd's data. Used when Endpoints is empty.
	DataDir string
	// Endpoints of an external etcd cluster.
	Endpoints []string
	// Prefix of every key; "/eci/" by default. Two services may share an etcd
	// cluster with different prefixes.
	Prefix string
	// CompactionRetention is how much history the embedded etcd keeps for
	// watches to resume from (default 10 minutes).
	CompactionRetention time.Duration
	// CAFile, CertFile and KeyFile reach an external etcd over TLS with a
	// client certificate (etcdtls.go); the embedded one makes its own.
	CAFile, CertFile, KeyFile string
	// Keys seal every collection's values (encrypt.go); nil: values are
	// stored as they are (and sealed ones can't be read).
	Keys   *Keys
	Logger *slog.Logger
}

// Store is an open connection to etcd (and the embedded etcd, if it runs one).
type Store struct {
	Client *clientv3.Client
	prefix string
	etcd   *embed.Etcd
	keys   *Keys
	log    *slog.Logger
	closed sync.Once

	kindsMu sync.Mutex
	kinds   map[string]bool // the collections made on this store
}

// Open starts the embedded etcd (or connects to the external one) and returns
// when it serves.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/eci/"
	}
	s := &Store{prefix: cfg.Prefix, log: cfg.Logger, keys: cfg.Keys, kinds: map[string]bool{}}
	endpoints := cfg.Endpoints
	tlsCfg, err := externalTLS(cfg)
	if err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		if cfg.DataDir == "" {
			return nil, errors.New("store: either a data dir (embedded etcd) or etcd endpoints are needed")
		}
		e, endpoint, err := startEmbedded(ctx, cfg)
		if err != nil {
			return nil, err
		}
		s.etcd = e
		endpoints = []string{endpoint}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: 5 * time.Second, Context: context.Background(),
		// A connection that went dead without a word (a member's host
		// gone) is found and dropped, and the watches on it resume on
		// another from their next revision: the placer reads its waiting
		// groups from one (as the apiserver's etcd client: 30 s, then
		// 10 s for the answer).
		DialKeepAliveTime: 30 * time.Second, DialKeepAliveTimeout: 10 * time.Second,
		TLS: tlsCfg, Logger: zap.NewNop(),
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connect to etcd %v: %w", endpoints, err)
	}
	s.Client = cli
	// The first request proves the cluster serves.
	reqCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := cli.Get(reqCtx, s.prefix+"ping"); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: etcd %v does not answer: %w", endpoints, err)
	}
	return s, nil
}

func startEmbedded(ctx context.Context, cfg Config) (*embed.Etcd, string, error) {
	ports, err := freeLoopbackPorts(1)
	if err != nil {
		return nil, "", err
	}
	local := cfg.DataDir + "-local"
	peerTLS, err := embeddedTLS(local)
	if err != nil {
		return nil, "", fmt.Errorf("store: the embedded etcd's certificates: %w", err)
	}
	sock := filepath.Join(local, "etcd.sock")
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		return nil, "", err
	}
	client := url.URL{Scheme: "unix", Path: sock}
	peer := url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	ec := embed.NewConfig()
	ec.PeerTLSInfo = peerTLS
	ec.Name = "eci"
	ec.Dir = cfg.DataDir
	// etcd wants a host:port to advertise; nobody dials it (this store
	// dials the socket, a single member has no peer to tell).
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{client}, []url.URL{{Scheme: "unix", Host: "localhost:0"}}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ec.InitialCluster = ec.Name + "=" + peer.String()
	// etcd's own zap logs are noisy (even a clean Close logs errors); what
	// matters comes through e.Err() and is logged with slog.
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ec.AutoCompactionMode = "periodic"
	retention := cfg.CompactionRetention
	if retention == 0 {
		retention = 10 * time.Minute
	}
	ec.AutoCompactionRetention = retention.String()
	ec.QuotaBackendBytes = 4 << 30
	// Watchers get a bookmark (the revision reached) at least this often.
	ec.WatchProgressNotifyInterval = 5 * time.Second
	ec.ListenMetricsUrls = nil
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, "", fmt.Errorf("store: start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("store: embedded etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", errors.New("store: embedded etcd not ready after 60s")
	case <-ctx.Done():
		e.Close()
		return nil, "", ctx.Err()
	}
	go func() {
		for err := range e.Err() {
			if err != nil {
				cfg.Logger.Error("embedded etcd", "err", err)
			}
		}
	}()
	if err := os.Chmod(sock, 0o600); err != nil {
		e.Close()
		return nil, "", err
	}
	return e, "unix://" + sock, nil
}

// Close disconnects and stops the embedded etcd. Safe to call twice.
func (s *Store) Close() {
	s.closed.Do(func() {
		if s.Client != nil {
			_ = s.Client.Close()
		}
		if s.etcd != nil {
			s.etcd.Close()
		}
	})
}

// Embedded tells whether this store runs its own etcd.
func (s *Store) Embedded() bool { return s.etcd != nil }

func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Endpoints are the client URLs of the etcd this store talks to.
func (s *Store) Endpoints() []string { return s.Client.Endpoints() }
