package jsondec_test

import "runtime"

func runtime_GC() { runtime.GC() } //nolint:revive // test helper

func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}
