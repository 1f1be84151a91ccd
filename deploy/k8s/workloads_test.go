package k8s_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mana/personas/deploy/internal/repo"
	"github.com/mana/personas/pkg/edge"
)

const nonRootUID = 65532

func TestContainersHardened(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			for _, w := range b.workloads() {
				t.Run(w.kind+"/"+w.name, func(t *testing.T) {
					t.Parallel()
					spec := w.pod.Spec
					require.NotNil(t, spec.AutomountServiceAccountToken)
					require.False(t, *spec.AutomountServiceAccountToken, "no service-account token mounted")
					psc := spec.SecurityContext
					require.NotNil(t, psc, "pod securityContext")
					require.True(t, ptrIs(psc.RunAsNonRoot, true), "pod runAsNonRoot")
					require.True(t, ptrIs(psc.RunAsUser, int64(nonRootUID)), "pod runAsUser")
					require.NotNil(t, psc.SeccompProfile)
					require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
					require.False(t, spec.HostNetwork || spec.HostPID || spec.HostIPC)

					containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
					require.NotEmpty(t, containers)
					for _, c := range containers {
						sc := c.SecurityContext
						require.NotNil(t, sc, "container %s securityContext", c.Name)
						require.True(t, ptrIs(sc.RunAsNonRoot, true), "container %s runAsNonRoot", c.Name)
						require.True(t, ptrIs(sc.RunAsUser, int64(nonRootUID)), "container %s runAsUser", c.Name)
						require.True(t, ptrIs(sc.ReadOnlyRootFilesystem, true), "container %s readOnlyRootFilesystem", c.Name)
						require.True(t, ptrIs(sc.AllowPrivilegeEscalation, false), "container %s allowPrivilegeEscalation", c.Name)
						require.False(t, ptrIs(sc.Privileged, true), "container %s privileged", c.Name)
						require.NotNil(t, sc.Capabilities, "container %s capabilities", c.Name)
						require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "container %s drops ALL", c.Name)
						require.Empty(t, sc.Capabilities.Add, "container %s adds capabilities", c.Name)
						require.NotNil(t, sc.SeccompProfile, "container %s seccompProfile", c.Name)
						require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)

						for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
							req, ok := c.Resources.Requests[res]
							require.True(t, ok, "container %s requests %s", c.Name, res)
							limit, ok := c.Resources.Limits[res]
							require.True(t, ok, "container %s limits %s", c.Name, res)
							require.True(t, req.Cmp(limit) <= 0, "container %s: %s request above limit", c.Name, res)
						}
					}

					if w.kind != "Deployment" {
						require.Equal(t, corev1.RestartPolicyNever, spec.RestartPolicy)
						return
					}
					d := b.deployments[w.name]
					require.True(t, ptrIs(d.Spec.Replicas, int32(2)), "2 replicas")
					require.Equal(t, appsv1.RollingUpdateDeploymentStrategyType, d.Spec.Strategy.Type)
					require.NotNil(t, d.Spec.Strategy.RollingUpdate)
					require.Equal(t, intstr.FromInt32(0), *d.Spec.Strategy.RollingUpdate.MaxUnavailable, "maxUnavailable 0")
					liveness, readiness := "/healthz", "/readyz"
					if w.name == "personas-gateway" {
						liveness, readiness = "/gateway/healthz", "/gateway/healthz"
					}
					for _, c := range spec.Containers {
						requireHTTPProbe(t, c.Name+" liveness", c.LivenessProbe, liveness)
						requireHTTPProbe(t, c.Name+" readiness", c.ReadinessProbe, readiness)
						// Keep serving while endpoints drop the pod (the timing of
						// the Go programs: TestShutdownNesting).
						require.NotNil(t, c.Lifecycle, "%s: preStop", c.Name)
						require.NotNil(t, c.Lifecycle.PreStop, "%s: preStop", c.Name)
						require.NotNil(t, c.Lifecycle.PreStop.Sleep, "%s: preStop sleep (no shell in the images)", c.Name)
					}
				})
			}
		})
	}
}

func requireHTTPProbe(t *testing.T, what string, p *corev1.Probe, path string) {
	t.Helper()
	require.NotNil(t, p, what)
	require.NotNil(t, p.HTTPGet, "%s: httpGet", what)
	require.Equal(t, path, p.HTTPGet.Path, what)
}

func ptrIs[T comparable](p *T, want T) bool { return p != nil && *p == want }

func TestGatewayWritableDirs(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			spec := load(t, o.name).deployments["personas-gateway"].Spec.Template.Spec
			volumes := map[string]corev1.Volume{}
			for _, v := range spec.Volumes {
				volumes[v.Name] = v
			}
			c := spec.Containers[0]
			require.Len(t, c.Command, 4)
			prefix := c.Command[3]
			var writable []string
			for _, m := range c.VolumeMounts {
				v, ok := volumes[m.Name]
				require.True(t, ok, "mount %s has no volume", m.Name)
				if v.EmptyDir != nil && !m.ReadOnly {
					writable = append(writable, m.MountPath)
				}
			}
			require.Equal(t, []string{prefix}, writable, "nginx's prefix (pid, temp dirs, rendered config) is the one emptyDir")
		})
	}
}

var versionTag = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-.][0-9A-Za-z.-]+)?$`)

func TestImagesPinned(t *testing.T) {
	t.Parallel()
	root, err := repo.Root()
	require.NoError(t, err)
	version := strings.TrimSpace(readFile(t, root, "deploy", "VERSION"))
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			for _, w := range load(t, o.name).workloads() {
				for _, c := range append(w.pod.Spec.InitContainers, w.pod.Spec.Containers...) {
					name, digest, hasDigest := strings.Cut(c.Image, "@sha256:")
					tagAt := strings.LastIndex(name, ":")
					hasTag := tagAt > strings.LastIndex(name, "/")
					require.True(t, hasDigest || hasTag, "%s/%s: image %q has neither tag nor digest", w.name, c.Name, c.Image)
					if hasDigest {
						require.Regexp(t, `^[0-9a-f]{64}$`, digest, "%s: digest", c.Image)
						continue
					}
					tag := name[tagAt+1:]
					require.Regexp(t, versionTag, tag, "%s/%s: tag %q is not a version (no latest, no moving tags)", w.name, c.Name, c.Image)
					require.True(t, strings.HasPrefix(c.Image, "ghcr.io/mana/"), "%s: our images only", c.Image)
					require.Equal(t, version, tag, "%s: tag differs from deploy/VERSION, which images.sh builds", c.Image)
					require.NotEqual(t, "mana-auth-dev", program(c.Image), "the mana-auth stand-in is never deployed by these overlays")
				}
			}
		})
	}
}

func TestSelectorsMatchPodLabels(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			// podsOf returns the Deployments whose pods a selector matches.
			podsOf := func(sel map[string]string) []string {
				var names []string
				for _, name := range sortedKeys(b.deployments) {
					if len(sel) > 0 && labelsInclude(b.deployments[name].Spec.Template.Labels, sel) {
						names = append(names, name)
					}
				}
				return names
			}
			for name, d := range b.deployments {
				require.True(t, selectorMatches(t, d.Spec.Selector, d.Spec.Template.Labels), "Deployment %s: selector does not match its pods", name)
				for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
					require.True(t, selectorMatches(t, tsc.LabelSelector, d.Spec.Template.Labels), "Deployment %s: topology spread selector", name)
				}
				require.Equal(t, name, d.Spec.Template.Labels["app.kubernetes.io/name"])
			}
			for name, s := range b.services {
				require.Equal(t, []string{name}, podsOf(s.Spec.Selector), "Service %s selects the pods of Deployment %s only", name, name)
			}
			for name, p := range b.pdbs {
				var matched []string
				for _, dn := range sortedKeys(b.deployments) {
					if selectorMatches(t, p.Spec.Selector, b.deployments[dn].Spec.Template.Labels) {
						matched = append(matched, dn)
					}
				}
				require.Equal(t, []string{name}, matched, "PodDisruptionBudget %s", name)
				require.NotNil(t, p.Spec.MinAvailable)
				require.Less(t, p.Spec.MinAvailable.IntValue(), int(*b.deployments[name].Spec.Replicas), "PDB %s would block every eviction", name)
			}
			for name, h := range b.hpas {
				require.Equal(t, "Deployment", h.Spec.ScaleTargetRef.Kind)
				require.Equal(t, "apps/v1", h.Spec.ScaleTargetRef.APIVersion)
				d, ok := b.deployments[h.Spec.ScaleTargetRef.Name]
				require.True(t, ok, "HPA %s targets a missing Deployment", name)
				require.NotNil(t, h.Spec.MinReplicas)
				require.Equal(t, *d.Spec.Replicas, *h.Spec.MinReplicas, "HPA %s minReplicas equals the Deployment's replicas", name)
				require.Greater(t, h.Spec.MaxReplicas, *h.Spec.MinReplicas)
				require.NotEmpty(t, h.Spec.Metrics)
			}
			for name, j := range b.jobs {
				require.Nil(t, j.Spec.Selector, "Job %s: let Kubernetes generate the selector", name)
			}
			for name, cj := range b.cronJobs {
				require.Nil(t, cj.Spec.JobTemplate.Spec.Selector, "CronJob %s: let Kubernetes generate the selector", name)
				require.Equal(t, name, cj.Spec.JobTemplate.Spec.Template.Labels["app.kubernetes.io/name"])
			}
		})
	}
}

func labelsInclude(set, sel map[string]string) bool {
	for k, v := range sel {
		if set[k] != v {
			return false
		}
	}
	return true
}

// listenPort is the port a program listens on in a container: its PORT (or
// GATEWAY_PORT) from the manifest, else the program's default.
func listenPort(t *testing.T, b *bundle, c corev1.Container) int {
	t.Helper()
	env := b.env(t, c)
	prog := program(c.Image)
	key, def := "PORT", 0
	if prog == "personas-gateway" {
		key, def = "GATEWAY_PORT", repo.GatewayPort
	} else {
		p, ok := repo.Lookup(prog)
		require.True(t, ok, "image %s runs no known program", c.Image)
		def = p.Port
	}
	v, ok := env[key]
	if !ok {
		return def
	}
	require.Nil(t, v.secretRef, "%s from a Secret", key)
	n, err := strconv.Atoi(v.value)
	require.NoError(t, err, "%s=%q", key, v.value)
	return n
}

// resolvePort turns a port reference (number or name) into the number of a
// container port.
func resolvePort(t *testing.T, c corev1.Container, ref intstr.IntOrString) int {
	t.Helper()
	if ref.Type == intstr.Int {
		return ref.IntValue()
	}
	for _, p := range c.Ports {
		if p.Name == ref.StrVal {
			return int(p.ContainerPort)
		}
	}
	require.FailNow(t, "unknown port name", "container %s has no port named %q", c.Name, ref.StrVal)
	return 0
}

func TestPortsAgree(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			servicePort := map[string]int{}
			for name, d := range b.deployments {
				require.Len(t, d.Spec.Template.Spec.Containers, 1, "Deployment %s", name)
				c := d.Spec.Template.Spec.Containers[0]
				port := listenPort(t, b, c)

				require.Len(t, c.Ports, 1, "%s: one container port", name)
				require.Equal(t, "http", c.Ports[0].Name)
				require.Equal(t, port, int(c.Ports[0].ContainerPort), "%s: containerPort is the port the program listens on", name)
				require.Equal(t, port, resolvePort(t, c, c.LivenessProbe.HTTPGet.Port), "%s: liveness port", name)
				require.Equal(t, port, resolvePort(t, c, c.ReadinessProbe.HTTPGet.Port), "%s: readiness port", name)

				svc, ok := b.services[name]
				require.True(t, ok, "Deployment %s has no Service", name)
				require.Len(t, svc.Spec.Ports, 1)
				require.Equal(t, port, resolvePort(t, c, svc.Spec.Ports[0].TargetPort), "Service %s: targetPort", name)
				require.Equal(t, port, int(svc.Spec.Ports[0].Port), "Service %s: port equals the program's, as callers expect", name)
				servicePort[name] = int(svc.Spec.Ports[0].Port)

				ann := d.Spec.Template.Annotations
				if name == "personas-gateway" {
					require.NotEqual(t, "true", ann["prometheus.io/scrape"], "nginx has no Prometheus endpoint")
					continue
				}
				require.Equal(t, "true", ann["prometheus.io/scrape"], "%s: scrape annotation", name)
				require.Equal(t, "/metrics", ann["prometheus.io/path"], name)
				require.Equal(t, strconv.Itoa(port), ann["prometheus.io/port"], "%s: scrape port", name)
			}

			// The gateway's upstreams are the Services, on their ports.
			gw := b.deployments["personas-gateway"].Spec.Template.Spec.Containers[0]
			env := b.env(t, gw)
			require.Equal(t, "personas-internal:"+strconv.Itoa(servicePort["personas-internal"]), env["PERSONAS_INTERNAL_UPSTREAM"].value)
			require.Equal(t, "personas-admin:"+strconv.Itoa(servicePort["personas-admin"]), env["PERSONAS_ADMIN_UPSTREAM"].value)
			require.True(t, strings.HasSuffix(env["MANA_AUTH_UPSTREAM"].value, ":3001"), "mana-auth listens on 3001")
		})
	}
}

// TestGoMemoryLimit: every container running one of our Go programs sets
// GOMEMLIMIT to a fixed value of 85-95% of its memory limit, so the Go
// runtime collects harder as the heap nears the limit and leaves room for
// what GOMEMLIMIT does not count (the binary's text, non-Go memory) before
// the kernel's OOM killer would act. A literal value keeps the test able to
// compare; a resourceFieldRef could only pass the whole limit.
func TestGoMemoryLimit(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			checked := 0
			for _, w := range b.workloads() {
				for _, c := range append(append([]corev1.Container{}, w.pod.Spec.InitContainers...), w.pod.Spec.Containers...) {
					if _, ok := repo.Lookup(program(c.Image)); !ok {
						continue // nginx
					}
					checked++
					what := w.name + "/" + c.Name
					limit, ok := c.Resources.Limits[corev1.ResourceMemory]
					require.True(t, ok, "%s: memory limit", what)
					env := b.env(t, c)
					v, ok := env["GOMEMLIMIT"]
					require.True(t, ok, "%s: GOMEMLIMIT is not set (its memory limit is %s)", what, limit.String())
					require.Nil(t, v.secretRef, "%s: GOMEMLIMIT", what)
					got, err := parseGoMemLimit(v.value)
					require.NoError(t, err, "%s: GOMEMLIMIT", what)
					ratio := float64(got) / float64(limit.Value())
					require.Less(t, got, limit.Value(), "%s: GOMEMLIMIT %s must be below the memory limit %s", what, v.value, limit.String())
					require.InDelta(t, 0.90, ratio, 0.05, "%s: GOMEMLIMIT %s is %.0f%% of the limit %s; want about 90%%", what, v.value, 100*ratio, limit.String())
				}
			}
			require.GreaterOrEqual(t, checked, 4, "internal, admin, the migration Job and the prune CronJob")
		})
	}
}

// parseGoMemLimit parses GOMEMLIMIT as the Go runtime does: a byte count
// with an optional unit B, KiB, MiB, GiB or TiB. "off" and anything else
// are errors here: the manifests must set a real limit.
func parseGoMemLimit(s string) (int64, error) {
	m := regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB|TiB)?$`).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q: want a byte count with an optional unit B, KiB, MiB, GiB or TiB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	shift := map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	return n << shift, nil
}

func TestParseGoMemLimit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"230MiB": 230 << 20, "1GiB": 1 << 30, "1024": 1024, "512KiB": 512 << 10, "7B": 7} {
		got, err := parseGoMemLimit(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "off", "230Mi", "230M", "1.5GiB", "-1", "230 MiB"} {
		_, err := parseGoMemLimit(in)
		require.Error(t, err, in)
	}
}

// TestShutdownNesting compares each Go Deployment's preStop sleep and
// terminationGracePeriodSeconds with the constants of pkg/edge/timeouts.go:
// the sleep is edge.PreStopSleep, and the grace period leaves the shutdown
// budget (edge.ShutdownTimeout, itself longer than any request may run)
// time to end before Kubernetes sends SIGKILL.
func TestShutdownNesting(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			checked := 0
			for _, name := range sortedKeys(b.deployments) {
				spec := b.deployments[name].Spec.Template.Spec
				for _, c := range spec.Containers {
					if _, ok := repo.Lookup(program(c.Image)); !ok {
						continue // nginx
					}
					checked++
					require.NotNil(t, c.Lifecycle, "%s: preStop", name)
					require.NotNil(t, c.Lifecycle.PreStop, "%s: preStop", name)
					require.NotNil(t, c.Lifecycle.PreStop.Sleep, "%s: preStop sleep", name)
					preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
					require.Equal(t, edge.PreStopSleep, preStop, "%s: preStop sleep", name)
					require.NotNil(t, spec.TerminationGracePeriodSeconds, "%s: terminationGracePeriodSeconds must be set (the default 30 s does not fit)", name)
					grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
					require.Equal(t, edge.GracePeriod, grace, "%s: terminationGracePeriodSeconds", name)
					require.Less(t, preStop+edge.ShutdownTimeout, grace, "%s: preStop + shutdown budget must end before SIGKILL", name)
					require.Less(t, edge.RequestTimeout, edge.ShutdownTimeout, "request deadline within the shutdown budget")
				}
			}
			require.Equal(t, 2, checked, "personas-internal and personas-admin")
		})
	}
}
