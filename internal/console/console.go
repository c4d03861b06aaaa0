// Package console is the web console eci server serves at /console/
// (docs/console.md): a caller's instances with their cost, the hosts (or,
// for a tenant, the pool's capacity), events, and cost over time as a
// chart. Pages are rendered on the server from embedded templates and
// the chart is an SVG drawn by go-analyze/charts: no script runs in the
// browser and nothing is loaded from elsewhere.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/log"
)

// Service is what the console reads, as the caller.
type Service interface {
	ListGroups(ctx context.Context, p auth.Principal, f control.GroupFilter, limit int64, cont string) (*apiv1.List[apiv1.ContainerGroup], error)
	ListHosts(ctx context.Context, p auth.Principal) ([]apiv1.Host, error)
	Capacity(ctx context.Context, p auth.Principal) (*apiv1.Capacity, error)
	ListEvents(ctx context.Context, p auth.Principal, id string) ([]apiv1.Event, error)
	Bill(ctx context.Context, p auth.Principal, q billing.Query) (*apiv1.Bill, error)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"milli": func(m int64) string { return strconv.FormatFloat(float64(m)/1000, 'f', -1, 64) },
	"gib":   func(m int64) string { return strconv.FormatFloat(float64(m)/1024, 'f', 1, 64) },
}).ParseFS(templateFS, "templates/*.html"))

// Console serves the pages.
type Console struct {
	svc      Service
	sessions Sessions
	// now is the clock (tests).
	now func() time.Time
}

// New returns the console over svc.
func New(svc Service, sessions Sessions) *Console {
	return &Console{svc: svc, sessions: sessions, now: time.Now}
}

// Handler serves /console/. Every page but the login page and the style
// sheet needs the session cookie (session.go).
func (c *Console) Handler() http.Handler {
	authenticated := c.authenticated
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /console/login", c.loginPage)
	mux.HandleFunc("POST /console/login", c.loginPost)
	mux.HandleFunc("POST /console/logout", c.logout)
	mux.Handle("GET /console/{$}", authenticated(http.HandlerFunc(c.overview)))
	mux.Handle("GET /console/cost.svg", authenticated(http.HandlerFunc(c.costChart)))
	return secure(mux)
}

// secure sets the headers every answer carries: nothing but this origin's
// styles and images, no script, no framing, no sniffing, no caching of
// what a token showed.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin") // (no-referrer would make the form posts' Origin "null")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// render writes a page with its status; a template error is logged.
func render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		log.G(r.Context()).Error("console: render", "page", name, "err", err)
	}
}
