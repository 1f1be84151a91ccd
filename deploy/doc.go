// Package deploy holds no code: the module github.com/mana/personas/deploy
// exists for the tests that guard the deployment files beside it.
//
//   - gateway: the nginx template and render script, checked with `nginx -t`
//     and by proxying real requests through nginx to test backends;
//   - docker: the Dockerfiles, checked statically, and every program built the
//     way they build it (static, CGO off);
//   - k8s: every kustomize overlay rendered with the kustomize API, decoded
//     strictly into k8s.io/api types, and checked for hardening, ports,
//     selectors, network policies, secrets and environment variables.
package deploy
