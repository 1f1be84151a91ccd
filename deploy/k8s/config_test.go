package k8s_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/mana/personas/deploy/internal/repo"
	"github.com/mana/personas/pkg/edge"
	"github.com/mana/personas/pkg/personas"
)

// secretNames are the variables that must come from a Secret, in every overlay.
var secretNames = []string{"DATABASE_URL", "MANA_SERVICE_KEY", "MANA_SERVICE_KEY_PREVIOUS"}

// runtimeEnv are read by the Go runtime rather than by config.go: a
// container may set them whatever its program reads (TestGoMemoryLimit
// checks their values).
var runtimeEnv = []string{"GOMEMLIMIT"}

// TestEnvMatchesProgramConfig checks every container that runs one of our Go
// programs against what the program reads (services/<program>/config.go):
// nothing set that the program ignores (a typo or a stale name), nothing
// required missing, and production settings where they matter.
func TestEnvMatchesProgramConfig(t *testing.T) {
	t.Parallel()
	root, err := repo.Root()
	require.NoError(t, err)
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			for _, w := range b.workloads() {
				for _, c := range w.pod.Spec.Containers {
					prog, ok := repo.Lookup(program(c.Image))
					if !ok {
						continue // the gateway: see TestGatewaySettings
					}
					t.Run(w.name+"/"+c.Name, func(t *testing.T) {
						t.Parallel()
						env := b.env(t, c)
						reads, err := repo.EnvRead(root, prog.Name)
						require.NoError(t, err, "cannot check the environment of %s/%s in overlay %s", w.name, c.Name, o.name)
						for _, name := range sortedKeys(env) {
							if slices.Contains(runtimeEnv, name) {
								continue
							}
							require.Contains(t, reads, name,
								"%s/%s sets %s (from %s), which %s does not read in services/%s/config.go (it reads %v)",
								w.name, c.Name, name, env[name].source, prog.Name, prog.Name, reads)
						}
						required := slices.Clone(prog.Required)
						if env["NODE_ENV"].value == "production" {
							required = append(required, prog.RequiredInProduction...)
						}
						for _, name := range required {
							v, ok := env[name]
							require.True(t, ok, "%s/%s: %s is required and not set", w.name, c.Name, name)
							require.True(t, v.secretRef != nil || v.value != "", "%s/%s: %s is empty", w.name, c.Name, name)
							if v.secretRef != nil {
								require.False(t, ptrIs(v.secretRef.Optional, true), "%s/%s: required %s from an optional secret key", w.name, c.Name, name)
							}
						}
						for _, name := range secretNames {
							if v, ok := env[name]; ok {
								require.NotNil(t, v.secretRef, "%s/%s: %s must come from a Secret, not %s", w.name, c.Name, name, v.source)
							}
						}
						if o.name == "prod" {
							require.Equal(t, "production", env["NODE_ENV"].value, "%s/%s: NODE_ENV", w.name, c.Name)
							require.Equal(t, "false", env["PERSONAS_AUTO_MIGRATE"].value, "%s/%s: the migration Job migrates", w.name, c.Name)
						}
					})
				}
			}
		})
	}
}

func TestMigrationJob(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			job := b.jobs["personas-migrate"]
			require.NotNil(t, job)
			c := job.Spec.Template.Spec.Containers[0]
			require.Equal(t, b.deployments["personas-internal"].Spec.Template.Spec.Containers[0].Image, c.Image,
				"the Job migrates with the image the service runs")
			require.Empty(t, c.Command, "keep the image's ENTRYPOINT (the binary)")
			require.Equal(t, []string{"migrate"}, c.Args)
			require.NotNil(t, job.Spec.BackoffLimit)
			require.NotNil(t, job.Spec.ActiveDeadlineSeconds, "a stuck migration must end")
			require.NotNil(t, job.Spec.TTLSecondsAfterFinished, "lets the next apply recreate the Job")
		})
	}
}

// TestPruneCronJob: the nightly prune runs the service's image and settings
// (the migrate Job's), never overlaps itself, and always ends.
func TestPruneCronJob(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			cj := b.cronJobs["personas-prune"]
			require.NotNil(t, cj)
			require.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy, "two prunes never run at once")
			require.Regexp(t, `^[0-9]+ [0-9]+ \* \* \*$`, cj.Spec.Schedule, "once a day, at a fixed minute and hour")
			require.True(t, ptrIs(cj.Spec.TimeZone, "Etc/UTC"), "the schedule is in UTC, as the persona schedule is")
			require.NotNil(t, cj.Spec.StartingDeadlineSeconds)
			job := cj.Spec.JobTemplate.Spec
			require.NotNil(t, job.ActiveDeadlineSeconds, "a stuck prune must end")
			require.NotNil(t, job.BackoffLimit)
			require.NotNil(t, job.TTLSecondsAfterFinished)
			require.Len(t, job.Template.Spec.Containers, 1)
			c := job.Template.Spec.Containers[0]
			svc := b.deployments["personas-internal"].Spec.Template.Spec.Containers[0]
			require.Equal(t, svc.Image, c.Image, "prune runs the image the service runs")
			require.Empty(t, c.Command, "keep the image's ENTRYPOINT (the binary)")
			require.Equal(t, []string{"prune"}, c.Args)

			// The same environment as the migrate Job: its settings and secrets.
			migrate := b.jobs["personas-migrate"].Spec.Template.Spec.Containers[0]
			require.Equal(t, migrate.EnvFrom, c.EnvFrom)
			env, menv := b.env(t, c), b.env(t, migrate)
			require.Equal(t, sortedKeys(menv), sortedKeys(env))
			for _, name := range secretNames {
				require.Equal(t, menv[name].secretRef, env[name].secretRef, name)
			}
			for _, name := range []string{"PERSONAS_RETENTION_DAYS", "PERSONAS_ROLLUP_RETENTION_DAYS"} {
				v, ok := env[name]
				require.True(t, ok, "%s is set", name)
				n, err := strconv.Atoi(v.value)
				require.NoError(t, err, name)
				require.GreaterOrEqual(t, n, personas.MinRetentionDays, name)
			}
			require.NoError(t, func() error {
				_, err := edge.RetentionVars(env["PERSONAS_RETENTION_DAYS"].value, env["PERSONAS_ROLLUP_RETENTION_DAYS"].value)
				return err
			}(), "the program accepts the overlay's retention")
		})
	}
}

// TestSecretsReferencedOnlyInProd: prod defines no Secret with data (the
// Secret is created outside the repository); every reference names the one
// Secret by its plain name. In dev, every reference resolves to a generated
// Secret holding the key. No overlay puts a secret value in a ConfigMap.
func TestSecretsReferencedOnlyInProd(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			for name, cm := range b.configMaps {
				for _, key := range secretNames {
					require.NotContains(t, cm.Data, key, "ConfigMap %s holds the secret %s", name, key)
				}
			}
			if o.name == "prod" {
				for name, s := range b.secrets {
					require.Empty(t, s.Data, "prod Secret %s has literal data", name)
					require.Empty(t, s.StringData, "prod Secret %s has literal data", name)
				}
			}
			refs := 0
			for _, w := range b.workloads() {
				for _, c := range w.pod.Spec.Containers {
					for _, e := range c.Env {
						if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
							continue
						}
						refs++
						ref := e.ValueFrom.SecretKeyRef
						if o.name == "prod" {
							require.Equal(t, "personas-secrets", ref.Name, "%s/%s %s: referenced by its plain name", w.name, c.Name, e.Name)
							continue
						}
						s, ok := b.secrets[ref.Name]
						require.True(t, ok, "%s/%s %s: Secret %s not in overlay %s", w.name, c.Name, e.Name, ref.Name, o.name)
						if !ptrIs(ref.Optional, true) {
							require.Contains(t, s.Data, ref.Key, "%s/%s %s", w.name, c.Name, e.Name)
						}
					}
				}
			}
			require.NotZero(t, refs)
		})
	}
}

// TestGatewayConfigIsTheTemplate: the ConfigMap the gateway mounts holds the
// very files of deploy/gateway, byte for byte, and the command runs the
// mounted render script.
func TestGatewayConfigIsTheTemplate(t *testing.T) {
	t.Parallel()
	root, err := repo.Root()
	require.NoError(t, err)
	want := map[string]string{
		"nginx.conf.template": readFile(t, root, "deploy", "gateway", "nginx.conf.template"),
		"render.sh":           readFile(t, root, "deploy", "gateway", "render.sh"),
	}
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			spec := b.deployments["personas-gateway"].Spec.Template.Spec
			var cmName, mountPath string
			for _, v := range spec.Volumes {
				if v.ConfigMap != nil {
					cmName = v.ConfigMap.Name
					for _, m := range spec.Containers[0].VolumeMounts {
						if m.Name == v.Name {
							mountPath = m.MountPath
							require.True(t, m.ReadOnly)
						}
					}
				}
			}
			require.True(t, strings.HasPrefix(cmName, "personas-gateway-config-"), "generated (hashed) name, got %q", cmName)
			cm, ok := b.configMaps[cmName]
			require.True(t, ok, "ConfigMap %s not in the overlay", cmName)
			require.Equal(t, want, cm.Data)
			require.Equal(t, []string{"/bin/sh", mountPath + "/render.sh", "--exec"}, spec.Containers[0].Command[:3])
		})
	}
}

// TestGatewaySettings: the gateway gets only variables render.sh reads, and
// render.sh accepts the overlay's values.
func TestGatewaySettings(t *testing.T) {
	t.Parallel()
	root, err := repo.Root()
	require.NoError(t, err)
	script := filepath.Join(root, "deploy", "gateway", "render.sh")
	var reads []string
	for _, m := range regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*):-`).FindAllStringSubmatch(readFile(t, script), -1) {
		reads = append(reads, m[1])
	}
	require.Contains(t, reads, "GATEWAY_PORT")
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			c := b.deployments["personas-gateway"].Spec.Template.Spec.Containers[0]
			env := b.env(t, c)
			cmdEnv := []string{"PATH=/usr/bin:/bin"}
			for _, name := range sortedKeys(env) {
				require.Contains(t, reads, name, "the gateway gets %s, which render.sh does not read", name)
				require.Nil(t, env[name].secretRef)
				cmdEnv = append(cmdEnv, name+"="+env[name].value)
			}
			cmd := exec.Command("sh", script, t.TempDir())
			cmd.Env = cmdEnv
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "render.sh with overlay %s's settings:\n%s", o.name, out)
		})
	}
}
