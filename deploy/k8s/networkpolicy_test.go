package k8s_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// endpoint is one side of a connection as NetworkPolicy sees it: a pod (its
// labels, and its namespace's labels) or, with pod nil, an address outside
// the cluster.
type endpoint struct {
	pod       map[string]string
	namespace map[string]string
	sameNS    bool
}

func (b *bundle) podOf(t *testing.T, name string) endpoint {
	t.Helper()
	return endpoint{pod: b.workload(t, name).pod.Labels, sameNS: true, namespace: b.namespaces[0].Labels}
}

var (
	runnerPod     = endpoint{pod: map[string]string{"app.kubernetes.io/name": "persona-runner"}, sameNS: true}
	strangerPod   = endpoint{pod: map[string]string{"app.kubernetes.io/name": "something-else"}, sameNS: true}
	prometheusPod = endpoint{pod: map[string]string{"app.kubernetes.io/name": "prometheus"}, namespace: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}
	otherNSRunner = endpoint{pod: map[string]string{"app.kubernetes.io/name": "persona-runner"}, namespace: map[string]string{"kubernetes.io/metadata.name": "elsewhere"}}
	outside       = endpoint{}
)

func peerMatches(t *testing.T, p networkingv1.NetworkPolicyPeer, e endpoint) bool {
	t.Helper()
	if p.IPBlock != nil {
		return e.pod == nil // an approximation: ipBlocks are for off-cluster addresses here
	}
	if e.pod == nil {
		return false
	}
	if p.NamespaceSelector == nil {
		if !e.sameNS {
			return false
		}
	} else if !selectorMatches(t, p.NamespaceSelector, e.namespace) {
		return false
	}
	return p.PodSelector == nil || selectorMatches(t, p.PodSelector, e.pod)
}

// portMatches: the port is given by number and, if the destination pod names
// it, by name.
func portMatches(ports []networkingv1.NetworkPolicyPort, proto corev1.Protocol, port int, name string) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil || (p.Port.StrVal == "" && p.Port.IntValue() == port) || (name != "" && p.Port.StrVal == name) {
			return true
		}
	}
	return false
}

func ruleAllows(t *testing.T, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, e endpoint, proto corev1.Protocol, port int, name string) bool {
	t.Helper()
	if !portMatches(ports, proto, port, name) {
		return false
	}
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if peerMatches(t, p, e) {
			return true
		}
	}
	return false
}

// policiesFor returns the policies that select a pod for one direction.
func (b *bundle) policiesFor(t *testing.T, pod map[string]string, dir networkingv1.PolicyType) []*networkingv1.NetworkPolicy {
	t.Helper()
	var out []*networkingv1.NetworkPolicy
	for _, name := range sortedKeys(b.netpols) {
		np := b.netpols[name]
		if !selectorMatches(t, &np.Spec.PodSelector, pod) {
			continue
		}
		for _, pt := range np.Spec.PolicyTypes {
			if pt == dir {
				out = append(out, np)
			}
		}
	}
	return out
}

// ingressAllowed: may from open a connection to port (number and name) of
// the pods of workload to?
func (b *bundle) ingressAllowed(t *testing.T, to string, from endpoint, port int, name string) bool {
	t.Helper()
	policies := b.policiesFor(t, b.workload(t, to).pod.Labels, networkingv1.PolicyTypeIngress)
	if len(policies) == 0 {
		return true
	}
	for _, np := range policies {
		for _, r := range np.Spec.Ingress {
			if ruleAllows(t, r.From, r.Ports, from, corev1.ProtocolTCP, port, name) {
				return true
			}
		}
	}
	return false
}

// egressAllowed: may the pods of workload from reach to on proto/port?
func (b *bundle) egressAllowed(t *testing.T, from string, to endpoint, proto corev1.Protocol, port int) bool {
	t.Helper()
	policies := b.policiesFor(t, b.workload(t, from).pod.Labels, networkingv1.PolicyTypeEgress)
	if len(policies) == 0 {
		return true
	}
	for _, np := range policies {
		for _, r := range np.Spec.Egress {
			if ruleAllows(t, r.To, r.Ports, to, proto, port, "") {
				return true
			}
		}
	}
	return false
}

func TestNetworkPoliciesSelectTheirPods(t *testing.T) {
	t.Parallel()
	// Each policy and the workloads whose pods it must select, no more.
	want := map[string][]string{
		"personas-internal": {"personas-internal"},
		"personas-admin":    {"personas-admin"},
		"personas-gateway":  {"personas-gateway"},
		"personas-migrate":  {"personas-migrate"},
		"personas-prune":    {"personas-prune"},
		"personas-metrics":  {"personas-admin", "personas-internal"},
	}
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			for name, np := range b.netpols {
				var selected []string
				for _, w := range b.workloads() {
					if selectorMatches(t, &np.Spec.PodSelector, w.pod.Labels) {
						selected = append(selected, w.name)
					}
				}
				require.ElementsMatch(t, want[name], selected, "NetworkPolicy %s", name)
				require.NotEqual(t, metav1.LabelSelector{}, np.Spec.PodSelector, "NetworkPolicy %s selects every pod of the namespace", name)
			}
			// Every workload is isolated both ways: whatever no rule allows is denied.
			for _, w := range b.workloads() {
				require.NotEmpty(t, b.policiesFor(t, w.pod.Labels, networkingv1.PolicyTypeIngress), "%s: not isolated for ingress", w.name)
				require.NotEmpty(t, b.policiesFor(t, w.pod.Labels, networkingv1.PolicyTypeEgress), "%s: not isolated for egress", w.name)
			}
		})
	}
}

func TestNetworkPoliciesIngress(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			tests := []struct {
				name string
				to   string
				from endpoint
				port int
				want bool
			}{
				{"GatewayToInternal", "personas-internal", b.podOf(t, "personas-gateway"), 3061, true},
				{"RunnerToInternal", "personas-internal", runnerPod, 3061, true},
				{"AdminToInternal", "personas-internal", b.podOf(t, "personas-admin"), 3061, false},
				{"StrangerToInternal", "personas-internal", strangerPod, 3061, false},
				{"RunnerInOtherNamespaceToInternal", "personas-internal", otherNSRunner, 3061, false},
				{"OutsideToInternal", "personas-internal", outside, 3061, false},
				{"GatewayToInternalOtherPort", "personas-internal", b.podOf(t, "personas-gateway"), 5432, false},
				{"PrometheusToInternal", "personas-internal", prometheusPod, 3061, true},
				{"GatewayToAdmin", "personas-admin", b.podOf(t, "personas-gateway"), 3062, true},
				{"RunnerToAdmin", "personas-admin", runnerPod, 3062, false},
				{"InternalToAdmin", "personas-admin", b.podOf(t, "personas-internal"), 3062, false},
				{"StrangerToAdmin", "personas-admin", strangerPod, 3062, false},
				{"PrometheusToAdmin", "personas-admin", prometheusPod, 3062, true},
				{"RunnerToGateway", "personas-gateway", runnerPod, 3060, true},
				{"OutsideToGateway", "personas-gateway", outside, 3060, true},
				{"OutsideToGatewayOtherPort", "personas-gateway", outside, 22, false},
				{"GatewayToMigrate", "personas-migrate", b.podOf(t, "personas-gateway"), 3061, false},
				{"GatewayToPrune", "personas-prune", b.podOf(t, "personas-gateway"), 3061, false},
				{"PrometheusToPrune", "personas-prune", prometheusPod, 3061, false},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					require.Equal(t, tc.want, b.ingressAllowed(t, tc.to, tc.from, tc.port, "http"))
				})
			}
		})
	}
}

func TestNetworkPoliciesEgress(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			b := load(t, o.name)
			tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
			tests := []struct {
				name  string
				from  string
				to    endpoint
				proto corev1.Protocol
				port  int
				want  bool
			}{
				{"InternalToPostgres", "personas-internal", outside, tcp, 5432, true},
				{"InternalToDNSUDP", "personas-internal", outside, udp, 53, true},
				{"InternalToDNSTCP", "personas-internal", outside, tcp, 53, true},
				{"InternalToManaAuth", "personas-internal", outside, tcp, 3001, false},
				{"InternalToInternet", "personas-internal", outside, tcp, 443, false},
				{"AdminToPostgres", "personas-admin", outside, tcp, 5432, true},
				{"AdminToManaAuth", "personas-admin", outside, tcp, 3001, true},
				{"AdminToDNS", "personas-admin", outside, udp, 53, true},
				{"AdminToInternet", "personas-admin", outside, tcp, 443, false},
				{"GatewayToInternal", "personas-gateway", b.podOf(t, "personas-internal"), tcp, 3061, true},
				{"GatewayToAdmin", "personas-gateway", b.podOf(t, "personas-admin"), tcp, 3062, true},
				{"GatewayToStrangerOnInternalPort", "personas-gateway", strangerPod, tcp, 3061, false},
				{"GatewayToManaAuth", "personas-gateway", outside, tcp, 3001, true},
				{"GatewayToDNS", "personas-gateway", outside, udp, 53, true},
				{"GatewayToPostgres", "personas-gateway", outside, tcp, 5432, false},
				{"MigrateToPostgres", "personas-migrate", outside, tcp, 5432, true},
				{"MigrateToDNS", "personas-migrate", outside, udp, 53, true},
				{"MigrateToManaAuth", "personas-migrate", outside, tcp, 3001, false},
				{"PruneToPostgres", "personas-prune", outside, tcp, 5432, true},
				{"PruneToDNS", "personas-prune", outside, udp, 53, true},
				{"PruneToManaAuth", "personas-prune", outside, tcp, 3001, false},
				{"PruneToInternet", "personas-prune", outside, tcp, 443, false},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					require.Equal(t, tc.want, b.egressAllowed(t, tc.from, tc.to, tc.proto, tc.port))
				})
			}
		})
	}
}
