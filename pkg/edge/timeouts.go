package edge

import "time"

// How long a request may take, and how long a stopping service waits for
// the requests it is serving. The values nest, so that every request that
// started before SIGTERM either finishes or is cut deliberately, never by
// Kubernetes' SIGKILL:
//
//	ReadTimeout      10 s  headers and body must have arrived (else 408)
//	RequestTimeout   15 s  the handler's deadline (body, queries, answer)
//	WriteTimeout     20 s  RequestTimeout + 5 s to write the answer
//	ShutdownTimeout  25 s  > ReadHeaderTimeout + WriteTimeout: the longest a
//	                       request already under way at SIGTERM can still run
//	PreStopSleep      5 s  Kubernetes keeps routing to a terminating pod for
//	                       a few seconds: keep serving meanwhile
//	GracePeriod      35 s  PreStopSleep + ShutdownTimeout + 5 s to flush the
//	                       log and exit before SIGKILL
//
// deploy/k8s's TestShutdownNesting reads the manifests' preStop sleep and
// terminationGracePeriodSeconds and compares them with these constants.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	RequestTimeout    = 15 * time.Second
	WriteTimeout      = RequestTimeout + 5*time.Second
	IdleTimeout       = 120 * time.Second
	ShutdownTimeout   = ReadHeaderTimeout + WriteTimeout
	PreStopSleep      = 5 * time.Second
	GracePeriod       = PreStopSleep + ShutdownTimeout + 5*time.Second
)
