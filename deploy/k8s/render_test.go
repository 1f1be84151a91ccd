package k8s_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/mana/personas/deploy/internal/repo"
)

// overlays are the kustomize overlays under deploy/k8s/overlays, with the
// namespace each deploys into.
var overlays = []struct {
	name      string
	namespace string
}{
	{name: "dev", namespace: "personas-dev"},
	{name: "prod", namespace: "personas"},
}

// kinds maps every kind the overlays may contain to its apiVersion and typed
// value. A kind not listed here fails the render: add it deliberately.
var kinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Namespace":               {"v1", func() any { return &corev1.Namespace{} }},
	"ConfigMap":               {"v1", func() any { return &corev1.ConfigMap{} }},
	"Secret":                  {"v1", func() any { return &corev1.Secret{} }},
	"Service":                 {"v1", func() any { return &corev1.Service{} }},
	"Deployment":              {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"Job":                     {"batch/v1", func() any { return &batchv1.Job{} }},
	"CronJob":                 {"batch/v1", func() any { return &batchv1.CronJob{} }},
	"HorizontalPodAutoscaler": {"autoscaling/v2", func() any { return &autoscalingv2.HorizontalPodAutoscaler{} }},
	"PodDisruptionBudget":     {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
	"NetworkPolicy":           {"networking.k8s.io/v1", func() any { return &networkingv1.NetworkPolicy{} }},
}

// bundle is one rendered overlay, every object decoded into its type.
type bundle struct {
	overlay, namespace string
	root               string

	namespaces  []*corev1.Namespace
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	services    map[string]*corev1.Service
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	cronJobs    map[string]*batchv1.CronJob
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs        map[string]*policyv1.PodDisruptionBudget
	netpols     map[string]*networkingv1.NetworkPolicy
	// meta of every object, for checks that apply to all.
	metas []metav1.ObjectMeta
	kinds []string
}

// decodeStrict decodes one YAML document into v: duplicate keys, unknown
// fields and trailing data are errors.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

func renderOverlay(name, namespace string) (*bundle, error) {
	root, err := repo.Root()
	if err != nil {
		return nil, err
	}
	// Default options, as `kubectl kustomize` and `kustomize build` use them:
	// files load only from within each kustomization's own directory.
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, "deploy", "k8s", "overlays", name))
	if err != nil {
		return nil, fmt.Errorf("kustomize build overlays/%s: %w", name, err)
	}
	b := &bundle{
		overlay: name, namespace: namespace, root: root,
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		services:    map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{},
		jobs:        map[string]*batchv1.Job{},
		cronJobs:    map[string]*batchv1.CronJob{},
		hpas:        map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
		netpols:     map[string]*networkingv1.NetworkPolicy{},
	}
	for _, res := range resMap.Resources() {
		kind := res.GetKind()
		id := fmt.Sprintf("overlays/%s: %s %s", name, kind, res.GetName())
		known, ok := kinds[kind]
		if !ok {
			return nil, fmt.Errorf("%s: kind not expected (add it to kinds with its k8s.io/api type)", id)
		}
		if res.GetApiVersion() != known.apiVersion {
			return nil, fmt.Errorf("%s: apiVersion %s, want %s", id, res.GetApiVersion(), known.apiVersion)
		}
		doc, err := res.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		obj := known.new()
		if err := decodeStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s does not decode strictly into %T: %w", id, obj, err)
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			b.namespaces = append(b.namespaces, o)
			b.metas = append(b.metas, o.ObjectMeta)
		case *corev1.ConfigMap:
			b.configMaps[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		case *corev1.Secret:
			b.secrets[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		case *corev1.Service:
			b.services[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		case *appsv1.Deployment:
			b.deployments[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		case *batchv1.Job:
			b.jobs[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		case *batchv1.CronJob:
			b.cronJobs[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		case *autoscalingv2.HorizontalPodAutoscaler:
			b.hpas[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		case *policyv1.PodDisruptionBudget:
			b.pdbs[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		case *networkingv1.NetworkPolicy:
			b.netpols[o.Name] = o
			b.metas = append(b.metas, o.ObjectMeta)
		}
		b.kinds = append(b.kinds, kind)
	}
	return b, nil
}

// rendered caches each overlay's render: many tests read it, none changes it.
var rendered = func() map[string]func() (*bundle, error) {
	m := map[string]func() (*bundle, error){}
	for _, o := range overlays {
		m[o.name] = sync.OnceValues(func() (*bundle, error) { return renderOverlay(o.name, o.namespace) })
	}
	return m
}()

func load(t *testing.T, overlay string) *bundle {
	t.Helper()
	b, err := rendered[overlay]()
	require.NoError(t, err)
	return b
}

// workload is a Deployment's, a Job's or a CronJob's pod template.
type workload struct {
	kind, name string
	pod        corev1.PodTemplateSpec
}

func (b *bundle) workloads() []workload {
	var out []workload
	for _, name := range sortedKeys(b.deployments) {
		out = append(out, workload{kind: "Deployment", name: name, pod: b.deployments[name].Spec.Template})
	}
	for _, name := range sortedKeys(b.jobs) {
		out = append(out, workload{kind: "Job", name: name, pod: b.jobs[name].Spec.Template})
	}
	for _, name := range sortedKeys(b.cronJobs) {
		out = append(out, workload{kind: "CronJob", name: name, pod: b.cronJobs[name].Spec.JobTemplate.Spec.Template})
	}
	return out
}

func (b *bundle) workload(t *testing.T, name string) workload {
	t.Helper()
	for _, w := range b.workloads() {
		if w.name == name {
			return w
		}
	}
	require.FailNow(t, "no workload", "overlay %s has no Deployment, Job or CronJob %q", b.overlay, name)
	return workload{}
}

// program returns the program a container image runs: the last path element
// of the image name (ghcr.io/mana/personas-admin:0.1.0 -> personas-admin).
func program(image string) string {
	name := image
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name[strings.LastIndex(name, "/")+1:]
}

// envVar is one variable a container gets, from env or from envFrom.
type envVar struct {
	value     string // literal, or the ConfigMap's value
	secretRef *corev1.SecretKeySelector
	source    string
}

// env resolves a container's environment: env entries and the keys of the
// ConfigMaps named in envFrom (which must exist in the overlay). envFrom of a
// Secret is refused: it hides which variables the program gets.
func (b *bundle) env(t *testing.T, c corev1.Container) map[string]envVar {
	t.Helper()
	out := map[string]envVar{}
	for _, from := range c.EnvFrom {
		require.Nil(t, from.SecretRef, "container %s: envFrom a Secret hides the variable names; use env with secretKeyRef", c.Name)
		require.NotNil(t, from.ConfigMapRef, "container %s: envFrom without a ConfigMap", c.Name)
		cm, ok := b.configMaps[from.ConfigMapRef.Name]
		require.True(t, ok, "container %s: envFrom ConfigMap %q is not in overlay %s", c.Name, from.ConfigMapRef.Name, b.overlay)
		for k, v := range cm.Data {
			out[from.Prefix+k] = envVar{value: v, source: "ConfigMap " + cm.Name}
		}
	}
	for _, e := range c.Env {
		v := envVar{value: e.Value, source: "env"}
		if e.ValueFrom != nil {
			require.Nil(t, e.ValueFrom.FieldRef, "container %s: %s", c.Name, e.Name)
			require.Nil(t, e.ValueFrom.ResourceFieldRef, "container %s: %s", c.Name, e.Name)
			if e.ValueFrom.ConfigMapKeyRef != nil {
				cm, ok := b.configMaps[e.ValueFrom.ConfigMapKeyRef.Name]
				require.True(t, ok, "container %s: %s names ConfigMap %q, not in the overlay", c.Name, e.Name, e.ValueFrom.ConfigMapKeyRef.Name)
				v.value = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
			v.secretRef = e.ValueFrom.SecretKeyRef
		}
		out[e.Name] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func selectorMatches(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	return s.Matches(labels.Set(set))
}

func readFile(t *testing.T, parts ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(parts...))
	require.NoError(t, err)
	return string(data)
}

func TestOverlaysRenderStrictly(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)

			require.ElementsMatch(t, []string{"personas-internal", "personas-admin", "personas-gateway"}, sortedKeys(b.deployments))
			require.ElementsMatch(t, []string{"personas-internal", "personas-admin", "personas-gateway"}, sortedKeys(b.services))
			require.ElementsMatch(t, []string{"personas-internal", "personas-admin", "personas-gateway"}, sortedKeys(b.hpas))
			require.ElementsMatch(t, []string{"personas-internal", "personas-admin", "personas-gateway"}, sortedKeys(b.pdbs))
			require.ElementsMatch(t, []string{"personas-migrate"}, sortedKeys(b.jobs))
			require.ElementsMatch(t, []string{"personas-prune"}, sortedKeys(b.cronJobs))
			require.ElementsMatch(t, []string{"personas-internal", "personas-admin", "personas-gateway", "personas-migrate", "personas-prune", "personas-metrics"}, sortedKeys(b.netpols))
			require.Len(t, b.namespaces, 1)
			require.Equal(t, o.namespace, b.namespaces[0].Name)
			require.Equal(t, "restricted", b.namespaces[0].Labels["pod-security.kubernetes.io/enforce"])

			for i, m := range b.metas {
				if b.kinds[i] == "Namespace" {
					continue
				}
				require.Equal(t, o.namespace, m.Namespace, "%s %s", b.kinds[i], m.Name)
				require.Equal(t, "personas", m.Labels["app.kubernetes.io/part-of"], "%s %s", b.kinds[i], m.Name)
			}
		})
	}
}

func TestDecodeStrictRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
	}{
		{name: "UnknownField", doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 2\n  replica: 3\n"},
		{name: "MisspelledProbe", doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          livenesProbe: {}\n"},
		{name: "DuplicateKey", doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nmetadata: {name: y}\n"},
		{name: "WrongType", doc: "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: two\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Error(t, decodeStrict([]byte(tc.doc), &appsv1.Deployment{}))
		})
	}
	require.NoError(t, decodeStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 2}\n"), &appsv1.Deployment{}))
}
