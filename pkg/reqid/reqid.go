// Package reqid carries a request's id in its context.Context, so that every
// log line written while serving the request (the HTTP clients' included)
// and every call made on its behalf can name the id the caller saw.
package reqid

import "context"

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
