package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/scheduler"
	"github.com/eci-dev/eci/internal/store"
)

// Config of an eci server.
type Config struct {
	// Addr is where the API listens (host:port); port 0 picks a free one.
	Addr string
	// DataDir holds the embedded etcd, the generated TLS files and the admin
	// token file.
	DataDir string
	// EtcdEndpoints of an external etcd cluster instead of the embedded one,
	// reached with EtcdCAFile, EtcdCertFile and EtcdKeyFile when it serves
	// TLS (the embedded one serves TLS with certificates of its own).
	EtcdEndpoints                         []string
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EncryptionKeyFile holds the keys that seal stored values (AES-GCM;
	// docs/security.md); generated into DataDir/encryption.key when empty
	// with the embedded etcd, required with an external one (every server
	// must use the same keys).
	EncryptionKeyFile string
	// TLSCertFile and TLSKeyFile serve the API; generated when empty.
	TLSCertFile, TLSKeyFile string
	// TLSNames are extra DNS names or IPs of a generated certificate.
	TLSNames []string
	// AdminToken is the admin's bearer token; generated into
	// DataDir/admin.token when empty.
	AdminToken string
	// Policy of placement: spread (default) or binpack.
	Policy scheduler.Policy
	// HostLeaseTTL: a host without a heartbeat for this long is lost (40 s).
	HostLeaseTTL time.Duration
	// Name identifies this server in leader election (the hostname).
	Name string
	// TenantRateLimit and HostRateLimit bound the requests of one token on
	// one server (DefaultTenantRateLimit, DefaultHostRateLimit; a negative
	// QPS: no limit). The admin is not limited.
	TenantRateLimit, HostRateLimit RateLimit
	// PriceBookFile is the price book bills are rated with (YAML,
	// docs/billing.md), read again when it changes; empty:
	// billing.DefaultBook.
	PriceBookFile string
	// PriceBookEvery is how often the file is read again (10 s).
	PriceBookEvery time.Duration
	// CostMetricsTag is the tag whose value labels the cost metrics
	// ("team" by default).
	CostMetricsTag string
	// Control tunes the service (tests set a clock).
	Control control.Options
}

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir is required (it holds the embedded etcd, TLS files and the admin token)")
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8443"
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--listen %q: want host:port: %w", c.Addr, err)
	}
	switch c.Policy {
	case "":
		c.Policy = scheduler.Spread
	case scheduler.Spread, scheduler.Binpack:
	default:
		return fmt.Errorf("--placement-policy %q: allowed: spread, binpack", c.Policy)
	}
	if len(c.EtcdEndpoints) > 0 && c.EncryptionKeyFile == "" {
		return errors.New("--encryption-key-file is required with --etcd-endpoints: every server on that etcd must seal and open stored values with the same keys (docs/security.md)")
	}
	if c.Control.UsageRetention < 0 {
		return fmt.Errorf("--usage-retention %s: must be positive", c.Control.UsageRetention)
	}
	if c.Control.UsageDetail != 0 && c.Control.UsageDetail < time.Hour {
		return fmt.Errorf("--usage-detail %s: allowed: an hour or more", c.Control.UsageDetail)
	}
	if c.CostMetricsTag == "" {
		c.CostMetricsTag = "team"
	}
	if c.PriceBookEvery <= 0 {
		c.PriceBookEvery = 10 * time.Second
	}
	if c.Control.SpotNotice < 0 {
		return fmt.Errorf("--spot-notice %s: must be positive", c.Control.SpotNotice)
	}
	if c.HostLeaseTTL < 0 {
		return fmt.Errorf("--host-lease-ttl %s: must be positive", c.HostLeaseTTL)
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.TenantRateLimit == (RateLimit{}) {
		c.TenantRateLimit = DefaultTenantRateLimit
	}
	if c.HostRateLimit == (RateLimit{}) {
		c.HostRateLimit = DefaultHostRateLimit
	}
	return nil
}

// Server is a running eci server.
type Server struct {
	cfg     Config
	svc     *control.Service
	agents  agentTransports
	st      *store.Store
	metrics *metrics
	limits  *limiters

	ready   chan struct{}
	done    chan struct{}
	addr    string
	caFile  string
	mu      sync.Mutex
	err     error
	leading bool

	costOnce sync.Once            // costmetrics.go
	costReg  *prometheus.Registry // costmetrics.go
}

// New validates cfg; Run starts the server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, ready: make(chan struct{}), done: make(chan struct{}), metrics: newMetrics(),
		limits: newLimiters(cfg.TenantRateLimit, cfg.HostRateLimit)}, nil
}

// Ready is closed once the server serves.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Done is closed when Run has returned.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is Run's error, once Done.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Addr is the address the API listens on (after Ready).
func (s *Server) Addr() string { return s.addr }

// URL is the API's base URL (after Ready).
func (s *Server) URL() string { return "https://" + s.addr }

// CAFile is the CA that signed a generated certificate ("" when files were given).
func (s *Server) CAFile() string { return s.caFile }

// AdminToken is the admin's bearer token (after Ready).
func (s *Server) AdminToken() string { return s.cfg.AdminToken }

// Service is the control logic (for in-process tests and benchmarks).
func (s *Server) Service() *control.Service { return s.svc }

// Run serves until ctx ends; everything it started is stopped when it returns.
func (s *Server) Run(ctx context.Context) (err error) {
	defer func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.done)
	}()
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	keyFile := s.cfg.EncryptionKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(s.cfg.DataDir, "encryption.key")
		if err := store.WriteKeyFile(keyFile); err != nil {
			return err
		}
	}
	keys, err := store.LoadKeys(keyFile)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Config{
		DataDir: filepath.Join(s.cfg.DataDir, "etcd"), Endpoints: s.cfg.EtcdEndpoints, Logger: log.G(ctx), Keys: keys,
		CAFile: s.cfg.EtcdCAFile, CertFile: s.cfg.EtcdCertFile, KeyFile: s.cfg.EtcdKeyFile,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	s.st = st
	opts := s.cfg.Control
	opts.Policy, opts.HostLeaseTTL, opts.Logger = s.cfg.Policy, s.cfg.HostLeaseTTL, log.G(ctx)
	s.svc = control.New(st, opts)
	if err := s.ensureAdminToken(ctx); err != nil {
		return err
	}
	if err := s.startPriceBook(ctx); err != nil {
		return err
	}
	cert, err := loadOrCreateTLS(s.cfg.TLSCertFile, s.cfg.TLSKeyFile, filepath.Join(s.cfg.DataDir, "tls"), s.cfg.TLSNames)
	if err != nil {
		return err
	}
	if s.cfg.TLSCertFile == "" {
		s.caFile = filepath.Join(s.cfg.DataDir, "tls", "ca.crt")
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is another server running there?): %w", s.cfg.Addr, err)
	}
	s.addr = l.Addr().String()
	srv := &http.Server{
		Handler:           s.handler(ctx),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(l, "", "") }()

	leaderCtx, stopLeader := context.WithCancel(ctx)
	leaderDone := make(chan struct{})
	go func() { defer close(leaderDone); s.lead(leaderCtx) }()

	log.G(ctx).Info("eci server serving", "addr", s.addr, "dataDir", s.cfg.DataDir, "embeddedEtcd", st.Embedded())
	close(s.ready)
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	stopLeader()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	<-leaderDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Leading tells whether this server runs the placer and the monitor now.
func (s *Server) Leading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading
}

func (s *Server) setLeading(v bool) {
	s.mu.Lock()
	s.leading = v
	s.mu.Unlock()
}
