package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Sessions signs callers in and out: a token is traded once for a session
// of the server's (stored, expiring, ended by sign-out or by the token's
// revocation), whose secret alone the browser keeps.
type Sessions interface {
	// Login checks a token (an admin's or a tenant's) and starts a session.
	Login(r *http.Request, token string) (session string, err error)
	// Principal is the caller of a live session.
	Principal(r *http.Request, session string) (auth.Principal, error)
	// Logout ends a session.
	Logout(r *http.Request, session string)
}

// CookieName holds a console session's secret: sent back only over TLS,
// to /console/, never to a script, never from another site.
const CookieName = "eci_console"

// Why the login page is shown again: fixed words, chosen by a code (a
// link can't put words of its own on the page).
var loginReasons = map[string]string{
	"ended": "Your session ended (it expired, was signed out, or its token was revoked): sign in again.",
}

// authenticated lets a request through with its principal when its
// session is live; else it goes to the login page.
func (c *Console) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(CookieName)
		if err != nil || ck.Value == "" {
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
			return
		}
		p, err := c.sessions.Principal(r, ck.Value)
		switch {
		case errdefs.IsUnauthenticated(err):
			clearSession(w)
			http.Redirect(w, r, "/console/login?why=ended", http.StatusSeeOther)
			return
		case err != nil: // (the store, or a rate: the session stays)
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	render(w, r, http.StatusOK, "login.html", map[string]string{"Failed": loginReasons[r.URL.Query().Get("why")]})
}

// loginPost trades the form's token for a session. A post from another
// origin is refused (login CSRF).
func (c *Console) loginPost(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "a login from another origin is refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		render(w, r, http.StatusUnauthorized, "login.html", map[string]string{"Failed": "A token is needed."})
		return
	}
	sess, err := c.sessions.Login(r, token)
	if err != nil {
		render(w, r, http.StatusUnauthorized, "login.html", map[string]string{"Failed": err.Error()})
		return
	}
	if old, err := r.Cookie(CookieName); err == nil && old.Value != "" {
		c.sessions.Logout(r, old.Value) // the session this one replaces
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: sess, Path: "/console/",
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "a logout from another origin is refused", http.StatusForbidden)
		return
	}
	if ck, err := r.Cookie(CookieName); err == nil && ck.Value != "" {
		c.sessions.Logout(r, ck.Value)
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
