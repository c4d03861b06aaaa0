package v1

// Token is a bearer token of the API. Only its creation answer carries the
// secret (Status.Token); the service keeps a hash.
type Token struct {
	Metadata ObjectMeta  `json:"metadata"`
	Spec     TokenSpec   `json:"spec"`
	Status   TokenStatus `json:"status,omitzero"`
}

// TokenSpec says whom the token speaks for.
type TokenSpec struct {
	// Kind: Tenant (sees and changes only its own groups) or Host (an agent: sees
	// only its host's groups and reports their status).
	Kind   TokenKind `json:"kind"`
	Tenant string    `json:"tenant,omitempty"`
	Host   string    `json:"host,omitempty"`
}

// TokenKind is the role of a token.
type TokenKind string

const (
	TokenAdmin  TokenKind = "Admin"
	TokenTenant TokenKind = "Tenant"
	TokenHost   TokenKind = "Host"
)

// TokenStatus carries the secret, once.
type TokenStatus struct {
	Token string `json:"token,omitempty"`
}

// Meta returns the metadata of a token.
func (t *Token) Meta() *ObjectMeta { return &t.Metadata }
