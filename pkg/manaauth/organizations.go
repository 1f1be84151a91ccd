package manaauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// OrganizationsPath is Better Auth's organization plugin list endpoint.
const OrganizationsPath = "/api/auth/organization/list"

// Organization is one entry of the organization plugin's list. Metadata is
// what Better Auth stores and answers: a JSON string (or empty for null),
// such as `{"type":"personal"}`, not an object.
type Organization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	Logo      string    `json:"logo"`
	CreatedAt time.Time `json:"createdAt"`
	Metadata  string    `json:"metadata"`
}

// UnmarshalJSON accepts null for logo and metadata, timestamps as RFC 3339
// or Unix milliseconds, and metadata as an object too (it is re-encoded as
// the string Better Auth normally answers).
func (o *Organization) UnmarshalJSON(b []byte) error {
	var w struct {
		ID        string          `json:"id"`
		Name      *string         `json:"name"`
		Slug      *string         `json:"slug"`
		Logo      *string         `json:"logo"`
		CreatedAt flexTime        `json:"createdAt"`
		Metadata  json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*o = Organization{
		ID: w.ID, Name: deref(w.Name), Slug: deref(w.Slug), Logo: deref(w.Logo),
		CreatedAt: time.Time(w.CreatedAt),
	}
	switch md := w.Metadata; {
	case len(md) == 0 || string(md) == "null":
	case md[0] == '"':
		if err := json.Unmarshal(md, &o.Metadata); err != nil {
			return fmt.Errorf("organization metadata: %w", err)
		}
	default:
		o.Metadata = string(md)
	}
	return nil
}

// Type is metadata's "type" ("personal" for a personal organization), or ""
// when metadata is absent, not JSON, or has no string type.
func (o Organization) Type() string {
	var md struct {
		Type any `json:"type"`
	}
	if o.Metadata == "" || json.Unmarshal([]byte(o.Metadata), &md) != nil {
		return ""
	}
	s, _ := md.Type.(string)
	return s
}

// PersonalOrganization picks what the platform's runner picks: the first
// organization whose metadata has type "personal". ok is false when there
// is none.
func PersonalOrganization(orgs []Organization) (Organization, bool) {
	for _, o := range orgs {
		if o.Type() == "personal" {
			return o, true
		}
	}
	return Organization{}, false
}

// ListOrganizations returns the organizations of the session whose opaque
// session token is sessionToken (the Token of a login or register answer,
// not the JWT), in mana-auth's order. A JWT, an unknown or an ended session
// wraps ErrUnauthorized. Retried like a read.
func (c *Client) ListOrganizations(ctx context.Context, sessionToken string) ([]Organization, error) {
	if sessionToken == "" {
		return nil, fmt.Errorf("manaauth: list organizations: empty session token")
	}
	var out []Organization
	err := c.do(ctx, request{
		op: "list organizations", method: http.MethodGet, path: OrganizationsPath,
		bearer: sessionToken, idempotent: true,
	}, &out)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &UpstreamError{Op: "list organizations", Status: http.StatusOK, Err: fmt.Errorf("response is not a list")}
	}
	return out, nil
}
