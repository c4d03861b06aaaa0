package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
)

// CookieName holds a console session: the caller's own token, sent back
// only over TLS, to /console/, never to a script, never from another site.
const CookieName = "eci_console"

// sessionHours is how long a login lasts.
const sessionHours = 8

// authenticated lets a request through with its principal when its
// session cookie holds a token of an admin or a tenant; else it goes to
// the login page.
func (c *Console) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(CookieName)
		if err != nil || ck.Value == "" {
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
			return
		}
		p, err := c.login(r, ck.Value)
		if err == nil && p.Kind == apiv1.TokenHost {
			err = fmt.Errorf("a host's token does not open the console")
		}
		if err != nil {
			clearSession(w)
			http.Redirect(w, r, "/console/login?failed="+url.QueryEscape(err.Error()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	msg := r.URL.Query().Get("failed")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	render(w, r, "login.html", map[string]string{"Failed": msg})
}

// loginPost checks the token the form sends and keeps it in the session
// cookie. A post from another origin is refused (login CSRF).
func (c *Console) loginPost(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "a login from another origin is refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	token := strings.TrimSpace(r.PostFormValue("token"))
	p, err := c.login(r, token)
	if err == nil && p.Kind == apiv1.TokenHost {
		err = fmt.Errorf("a host's token does not open the console")
	}
	if token == "" || err != nil {
		if err == nil {
			err = fmt.Errorf("a token is needed")
		}
		w.WriteHeader(http.StatusUnauthorized)
		render(w, r, "login.html", map[string]string{"Failed": err.Error()})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/console/", MaxAge: sessionHours * 3600,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "a logout from another origin is refused", http.StatusForbidden)
		return
	}
	clearSession(w)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/console/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// sameOrigin tells whether a form post comes from this server's pages: its
// Origin (or, without one, its Referer) names this host over https.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		ref, err := url.Parse(r.Header.Get("Referer"))
		if err != nil || ref.Host == "" {
			return false
		}
		origin = ref.Scheme + "://" + ref.Host
	}
	return origin == "https://"+r.Host
}
