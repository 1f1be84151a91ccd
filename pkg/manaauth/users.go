package manaauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// User is a mana-auth account as the admin and auth endpoints describe it.
// Fields an endpoint does not send stay at their zero value (see
// CONTRACT.md for which endpoint sends what).
type User struct {
	ID            string    `json:"id"`
	Email         string    `json:"email"`
	Name          string    `json:"name"`
	Role          string    `json:"role"`
	EmailVerified bool      `json:"emailVerified"`
	Image         string    `json:"image"`
	AccessTier    string    `json:"accessTier"`
	Kind          string    `json:"kind"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// UnmarshalJSON accepts timestamps as RFC 3339 strings, Unix milliseconds or
// null, and null for every string field: Better Auth is not consistent.
func (u *User) UnmarshalJSON(b []byte) error {
	var w struct {
		ID            string   `json:"id"`
		Email         string   `json:"email"`
		Name          *string  `json:"name"`
		Role          *string  `json:"role"`
		EmailVerified *bool    `json:"emailVerified"`
		Image         *string  `json:"image"`
		AccessTier    *string  `json:"accessTier"`
		Kind          *string  `json:"kind"`
		CreatedAt     flexTime `json:"createdAt"`
		UpdatedAt     flexTime `json:"updatedAt"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*u = User{
		ID: w.ID, Email: w.Email,
		Name: deref(w.Name), Role: deref(w.Role), Image: deref(w.Image),
		AccessTier: deref(w.AccessTier), Kind: deref(w.Kind),
		CreatedAt: time.Time(w.CreatedAt), UpdatedAt: time.Time(w.UpdatedAt),
	}
	if w.EmailVerified != nil {
		u.EmailVerified = *w.EmailVerified
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

type flexTime time.Time

func (t *flexTime) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	switch {
	case s == "null" || s == `""`:
		return nil
	case strings.HasPrefix(s, `"`):
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return fmt.Errorf("timestamp %q: %w", str, err)
		}
		*t = flexTime(v)
	default:
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("timestamp %s: %w", s, err)
		}
		*t = flexTime(time.UnixMilli(ms).UTC())
	}
	return nil
}

// RegisterRequest is the body of POST /api/v1/auth/register.
type RegisterRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	// Name is required upstream; when empty the client sends the local part
	// of the email.
	Name string `json:"name"`
}

// RegisterResponse is what register answers. Token is an opaque session
// token, not a JWT.
type RegisterResponse struct {
	Token string `json:"token"`
	User  User   `json:"user"`
}

// LoginResponse is what login answers. AccessToken is the JWT (EdDSA);
// Token and RefreshToken are the opaque session token.
type LoginResponse struct {
	Redirect     bool   `json:"redirect"`
	Token        string `json:"token"`
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	User         User   `json:"user"`
}

// UserPage is one page of the admin user search.
type UserPage struct {
	Users []User `json:"users"`
	Total int    `json:"total"`
	Page  int    `json:"page"`
	Limit int    `json:"limit"`
}

// StampResponse is what persona-stamp answers (defined by this repository,
// see CONTRACT.md).
type StampResponse struct {
	OK            bool   `json:"ok"`
	UserID        string `json:"userId"`
	Kind          string `json:"kind"`
	Tier          string `json:"tier"`
	EmailVerified bool   `json:"emailVerified"`
}

// registerStatus maps register's refusals: Better Auth's duplicate-email
// answers (422 USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL in 1.6, or
// USER_ALREADY_EXISTS) to ErrAlreadyExists, any other 400 or 422 (a
// password or name its policy rejects) to ErrRefused.
func registerStatus(status int, code string) error {
	if (status == http.StatusUnprocessableEntity || status == http.StatusBadRequest || status == http.StatusConflict) &&
		strings.HasPrefix(code, "USER_ALREADY_EXISTS") {
		return ErrAlreadyExists
	}
	if status == http.StatusBadRequest || status == http.StatusUnprocessableEntity {
		return ErrRefused
	}
	return nil
}

// Register creates an account. It is not idempotent, so it is retried only
// when the connection could not be made (package retry): a lost answer followed
// by a retry would report a duplicate for the caller's own account. On a
// taken email it returns an error wrapping ErrAlreadyExists; when mana-auth
// refuses the input otherwise (400/422), a *RefusedError carrying its code
// and message.
func (c *Client) Register(ctx context.Context, r RegisterRequest) (*RegisterResponse, error) {
	if r.Name == "" {
		r.Name, _, _ = strings.Cut(r.Email, "@")
	}
	var out RegisterResponse
	err := c.do(ctx, request{
		op: "register", method: http.MethodPost, path: "/api/v1/auth/register",
		body: r, secrets: []string{r.Password}, mapStatus: registerStatus,
	}, &out)
	if err != nil {
		return nil, err
	}
	if out.User.ID == "" {
		return nil, &UpstreamError{Op: "register", Status: http.StatusOK, Err: fmt.Errorf("response carries no user id")}
	}
	return &out, nil
}

// Login signs in with email and password and returns the session, whose
// AccessToken is the JWT. Wrong credentials wrap ErrUnauthorized. Retried
// only when the connection could not be made: each login opens a session.
func (c *Client) Login(ctx context.Context, email, password string) (*LoginResponse, error) {
	var out LoginResponse
	err := c.do(ctx, request{
		op: "login", method: http.MethodPost, path: "/api/v1/auth/login",
		body:    map[string]string{"email": email, "password": password},
		secrets: []string{password},
	}, &out)
	if err != nil {
		return nil, err
	}
	if out.AccessToken == "" {
		return nil, &UpstreamError{Op: "login", Status: http.StatusOK, Err: fmt.Errorf("response carries no accessToken")}
	}
	return &out, nil
}

// SearchUsers runs the admin search: a case-insensitive substring match on
// email or name. page starts at 1; zero page or limit are left to the server.
// bearer is an admin JWT (forwarded, never logged).
func (c *Client) SearchUsers(ctx context.Context, bearer, search string, page, limit int) (*UserPage, error) {
	q := url.Values{}
	q.Set("search", search)
	if page > 0 {
		q.Set("page", strconv.Itoa(page))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out UserPage
	err := c.do(ctx, request{
		op: "search users", method: http.MethodGet, path: "/api/v1/admin/users",
		query: q, bearer: bearer, idempotent: true,
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// maxSearchPages bounds FindUserByEmail against a server whose paging never
// ends.
const maxSearchPages = 100

// FindUserByEmail returns the user whose email equals email, ignoring case
// and surrounding space. The admin search matches substrings, so it pages
// through the results until it finds the exact match; none wraps
// ErrNotFound.
func (c *Client) FindUserByEmail(ctx context.Context, bearer, email string) (*User, error) {
	want := strings.TrimSpace(email)
	if want == "" {
		return nil, fmt.Errorf("manaauth: find user by email: empty email")
	}
	seen := 0
	for page := 1; page <= maxSearchPages; page++ {
		res, err := c.SearchUsers(ctx, bearer, want, page, c.pageSize)
		if err != nil {
			return nil, fmt.Errorf("manaauth: find user by email (page %d): %w", page, err)
		}
		for i := range res.Users {
			if strings.EqualFold(strings.TrimSpace(res.Users[i].Email), want) {
				u := res.Users[i]
				return &u, nil
			}
		}
		seen += len(res.Users)
		if len(res.Users) == 0 || seen >= res.Total {
			break
		}
	}
	return nil, &StatusError{Op: "find user by email", Status: http.StatusNotFound, kind: ErrNotFound}
}

// GetUser returns one user by id (admin endpoint). Unknown ids wrap
// ErrNotFound.
func (c *Client) GetUser(ctx context.Context, bearer, id string) (*User, error) {
	if id == "" {
		return nil, fmt.Errorf("manaauth: get user: empty id")
	}
	var out struct {
		User *User `json:"user"`
	}
	err := c.do(ctx, request{
		op: "get user", method: http.MethodGet, path: "/api/v1/admin/users/" + url.PathEscape(id) + "/data",
		bearer: bearer, idempotent: true,
	}, &out)
	if err != nil {
		return nil, err
	}
	if out.User == nil || out.User.ID == "" {
		return nil, &UpstreamError{Op: "get user", Status: http.StatusOK, Err: fmt.Errorf("response carries no user")}
	}
	return out.User, nil
}

// DeleteUser deletes a user and all their data (admin endpoint). It is
// retried like a read (package retry); a retry that finds the user gone
// reports ErrNotFound, which callers treat as "already deleted".
func (c *Client) DeleteUser(ctx context.Context, bearer, id string) error {
	if id == "" {
		return fmt.Errorf("manaauth: delete user: empty id")
	}
	var out struct {
		Success *bool `json:"success"`
	}
	err := c.do(ctx, request{
		op: "delete user", method: http.MethodDelete, path: "/api/v1/admin/users/" + url.PathEscape(id) + "/data",
		bearer: bearer, idempotent: true,
	}, &out)
	if err != nil {
		return err
	}
	if out.Success != nil && !*out.Success {
		return &UpstreamError{Op: "delete user", Status: http.StatusOK, Err: fmt.Errorf("response says success=false")}
	}
	return nil
}

// StampPersona marks a user as a persona: kind=persona, tier=founder, email
// verified. Idempotent, so it is retried. Needs WithServiceKey; a wrong key
// wraps ErrUnauthorized, an unknown user ErrNotFound.
func (c *Client) StampPersona(ctx context.Context, userID string) (*StampResponse, error) {
	if userID == "" {
		return nil, fmt.Errorf("manaauth: stamp persona: empty user id")
	}
	if c.serviceKey == "" {
		return nil, fmt.Errorf("manaauth: stamp persona: no service key configured (WithServiceKey)")
	}
	var out StampResponse
	err := c.do(ctx, request{
		op: "stamp persona", method: http.MethodPost, path: "/api/v1/internal/users/" + url.PathEscape(userID) + "/persona-stamp",
		serviceKey: true, idempotent: true,
	}, &out)
	if err != nil {
		return nil, err
	}
	if !out.OK {
		return nil, &UpstreamError{Op: "stamp persona", Status: http.StatusOK, Err: fmt.Errorf("response does not say ok")}
	}
	return &out, nil
}
