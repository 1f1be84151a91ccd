package devauth

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"
)

// Op names an endpoint of the stand-in that faults can be injected into.
type Op string

// The operations that accept faults.
const (
	OpRegister Op = "register"
	OpLogin    Op = "login"
	OpSearch   Op = "search"
	OpGetUser  Op = "getUser"
	OpDelete   Op = "delete"
	OpStamp    Op = "stamp"
	OpJWKS     Op = "jwks"

	OpSignIn     Op = "signIn"
	OpToken      Op = "token"
	OpGetSession Op = "getSession"
	OpSignOut    Op = "signOut"
	OpListOrgs   Op = "listOrganizations"
)

var knownOps = map[Op]bool{
	OpRegister: true, OpLogin: true, OpSearch: true, OpGetUser: true,
	OpDelete: true, OpStamp: true, OpJWKS: true,
	OpSignIn: true, OpToken: true, OpGetSession: true, OpSignOut: true, OpListOrgs: true,
}

// Fault describes how an operation misbehaves. Exactly one of Status or
// Hang applies (Hang wins).
type Fault struct {
	// Status is answered instead of doing the work (e.g. 500, 503).
	Status int `json:"status,omitempty"`
	// Hang blocks the request until the client gives up or the server
	// drains, without doing the work.
	Hang bool `json:"hang,omitempty"`
	// After does the work first and then answers Status (or hangs): the
	// caller sees a failure although the change happened, like an answer
	// lost on the way back.
	After bool `json:"after,omitempty"`
	// Times limits the fault to the next n requests; 0 means until cleared.
	Times int `json:"times,omitempty"`
}

// Faults holds the injected faults of one Server. Safe for concurrent use.
type Faults struct {
	mu      sync.Mutex
	faults  map[Op]*Fault
	done    <-chan struct{}
	hanging atomic.Int64
}

// Hanging is the number of requests currently held by a hang fault.
func (f *Faults) Hanging() int { return int(f.hanging.Load()) }

// Set injects f into op, replacing any earlier fault of op.
func (f *Faults) Set(op Op, fault Fault) error {
	if !knownOps[op] {
		return fmt.Errorf("unknown op %q", op)
	}
	if !fault.Hang && (fault.Status < 400 || fault.Status > 599) {
		return fmt.Errorf("fault for %q needs hang or a status in 400..599", op)
	}
	if fault.Times < 0 {
		return fmt.Errorf("times must be >= 0")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[op] = &fault
	return nil
}

// Clear removes the fault of op.
func (f *Faults) Clear(op Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.faults, op)
}

// ClearAll removes every fault.
func (f *Faults) ClearAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.faults)
}

// Active returns a copy of the current faults.
func (f *Faults) Active() map[Op]Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[Op]Fault, len(f.faults))
	for op, ft := range f.faults {
		out[op] = *ft
	}
	return out
}

// take returns the fault to apply to this request of op, consuming one use.
func (f *Faults) take(op Op) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft, ok := f.faults[op]
	if !ok {
		return nil
	}
	cp := *ft
	if ft.Times > 0 {
		ft.Times--
		if ft.Times == 0 {
			delete(f.faults, op)
		}
	}
	return &cp
}

// misbehave answers per ft: it hangs until the client or the server gives
// up, or writes ft.Status with an error body.
func (f *Faults) misbehave(c echo.Context, op Op, ft *Fault) error {
	if ft.Hang {
		f.hanging.Add(1)
		defer f.hanging.Add(-1)
		select {
		case <-c.Request().Context().Done():
		case <-f.done:
		}
		return c.JSON(http.StatusServiceUnavailable, errBody("Unavailable", fmt.Sprintf("injected hang on %s ended", op)))
	}
	return c.JSON(ft.Status, errBody("InjectedFault", fmt.Sprintf("injected fault on %s", op)))
}

// faultRequest is the body of POST /__faults.
type faultRequest struct {
	Op Op `json:"op"`
	Fault
}
