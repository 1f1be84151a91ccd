// Package reqid carries a request's id in its context.Context, so every
// layer a request passes through — the HTTP edge, the store's logs, the
// typed clients' outgoing calls — can tag what it does with the id the
// caller saw, without threading a parameter through every signature.
//
// It is a leaf package: it imports nothing of this repository and knows
// nothing about HTTP beyond the name of the header the clients send.
package reqid

import "context"

// Header is the HTTP header the id travels in, in and out.
const Header = "X-Request-Id"

type key struct{}

// With returns a copy of ctx carrying id. An empty id leaves ctx as is.
func With(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, key{}, id)
}

// From returns the id carried by ctx, or "".
func From(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(key{}).(string)
	return id
}
