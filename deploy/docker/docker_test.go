package docker_test

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mana/personas/deploy/internal/repo"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

// stage is one FROM and the instructions under it.
type stage struct {
	image string
	name  string
	body  []instruction
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// parseDockerfile reads the subset of the Dockerfile syntax our files use:
// comments, backslash continuations, and FROM [--platform=X] IMAGE [AS NAME].
func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err, "%s is missing", path)

	var (
		stages []stage
		buf    strings.Builder
		start  int
	)
	flush := func() {
		text := strings.TrimSpace(buf.String())
		buf.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, "--") })
			require.NotEmpty(t, fields, "%s:%d: FROM without image", path, in.line)
			st := stage{image: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			return
		}
		require.NotEmpty(t, stages, "%s:%d: %s before FROM", path, in.line, in.cmd)
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // comments, parser directives, comment lines inside continuations
		}
		if buf.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			buf.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		buf.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

// pinned reports whether an image reference names a fixed version: a digest,
// or a tag other than latest. The distroless "nonroot" tag is the variant the
// design prescribes; pin it by digest in a registry mirror if need be.
var versionedTag = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*(-[a-z0-9.]+)?$`)

// goStage is the Go build stage, the first golang one: personas-admin has a
// Node stage before it that builds the dashboard the binary embeds.
func goStage(stages []stage) stage {
	for _, st := range stages {
		if strings.HasPrefix(st.image, "golang:") {
			return st
		}
	}
	return stages[0]
}

func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return false // no tag: latest
	}
	tag := image[i+1:]
	return versionedTag.MatchString(tag) || tag == "nonroot"
}

// shellWords splits a command line as sh would for our simple RUN lines:
// blanks separate words, single and double quotes group them.
func shellWords(s string) []string {
	var (
		words []string
		cur   strings.Builder
		quote rune
		in    bool
	)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// goBuild is how a Dockerfile's build stage builds its program.
type goBuild struct {
	workdir string   // container path
	env     []string // KEY=VALUE from ENV
	args    []string // after "go build"
	output  string   // the -o path
}

func buildOf(t *testing.T, st stage) goBuild {
	t.Helper()
	var b goBuild
	for _, in := range st.body {
		switch in.cmd {
		case "WORKDIR":
			b.workdir = in.args
		case "ENV":
			for _, kv := range shellWords(in.args) {
				require.Contains(t, kv, "=", "ENV %q: use the KEY=VALUE form", in.args)
				b.env = append(b.env, kv)
			}
		case "RUN":
			_, cmdline, ok := strings.Cut(in.args, "go build ")
			if !ok {
				continue
			}
			cmdline, _, _ = strings.Cut(cmdline, "&&")
			b.args = shellWords(cmdline)
		}
	}
	require.NotEmpty(t, b.args, "the build stage has no RUN ... go build")
	i := slices.Index(b.args, "-o")
	require.True(t, i >= 0 && i+1 < len(b.args), "go build without -o: %v", b.args)
	b.output = b.args[i+1]
	return b
}

func (b goBuild) envValue(key string) string {
	v := ""
	for _, kv := range b.env {
		if k, val, _ := strings.Cut(kv, "="); k == key {
			v = val
		}
	}
	return v
}

func root(t *testing.T) string {
	t.Helper()
	r, err := repo.Root()
	require.NoError(t, err)
	return r
}

func TestProgramDockerfiles(t *testing.T) {
	t.Parallel()
	for _, prog := range repo.Programs {
		t.Run(prog.Name, func(t *testing.T) {
			t.Parallel()
			stages := parseDockerfile(t, filepath.Join(root(t), "deploy", "docker", prog.Name+".Dockerfile"))
			require.GreaterOrEqual(t, len(stages), 2, "multi-stage: a build stage and a final stage")

			names := map[string]bool{}
			for _, st := range stages {
				if !names[st.image] {
					require.True(t, pinned(st.image), "base image %q is not pinned to a version tag or digest", st.image)
				}
				if st.name != "" {
					names[st.name] = true
				}
			}

			build, final := goStage(stages), stages[len(stages)-1]
			require.True(t, strings.HasPrefix(build.image, "golang:1.26"), "builder is golang:1.26, got %s", build.image)
			b := buildOf(t, build)
			require.Equal(t, "0", b.envValue("CGO_ENABLED"), "CGO_ENABLED=0 in the build stage's ENV")
			require.Contains(t, b.args, "-trimpath")
			require.Contains(t, b.args, "-ldflags=-s -w")
			require.Equal(t, "/out/"+prog.Name, b.output)
			require.Equal(t, "/src/services/"+prog.Name, b.workdir, "built inside the service directory")
			require.Equal(t, "off", b.envValue("GOWORK"), "GOWORK=off: go.work names modules absent from the context")
			// Other modules the service's go.mod replaces (the stand-in its
			// tests import) contribute their go.mod and go.sum only: go mod
			// download reads them, the binary never imports them.
			siblings := replacedSiblings(t, filepath.Join(root(t), "services", prog.Name, "go.mod"))
			moduleFile := map[string]bool{}
			for _, dir := range siblings {
				moduleFile["services/"+dir+"/go.mod"] = true
				moduleFile["services/"+dir+"/go.sum"] = true
			}
			copied := map[string]bool{}
			for _, in := range build.all("COPY") {
				fields := strings.Fields(in.args)
				if strings.HasPrefix(fields[0], "--from=") {
					continue // from an earlier stage (the dashboard build), not the context
				}
				for _, src := range fields[:len(fields)-1] {
					copied[src] = true
					require.True(t, strings.HasPrefix(src, "pkg/") || strings.HasPrefix(src, "services/"+prog.Name+"/") || moduleFile[src],
						"line %d copies %s: only pkg/, services/%s/ and the go.mod/go.sum of replaced modules are in the context", in.line, src, prog.Name)
				}
			}
			for _, dir := range siblings {
				for _, f := range []string{"go.mod", "go.sum"} {
					require.True(t, copied["services/"+dir+"/"+f], "go.mod replaces a module with ../%s: copy services/%s/%s, or go mod download fails", dir, dir, f)
				}
			}

			require.Equal(t, "gcr.io/distroless/static-debian12:nonroot", final.image)
			require.Empty(t, final.all("RUN"), "no RUN in the final stage: the image has no shell")
			require.Empty(t, final.all("SHELL"))
			users := final.all("USER")
			require.NotEmpty(t, users)
			require.Equal(t, "65532:65532", users[len(users)-1].args)
			copies := final.all("COPY")
			require.Len(t, copies, 1, "the final stage holds the binary only")
			require.Equal(t, fmt.Sprintf("--from=%s %s /%s", build.name, b.output, prog.Name), copies[0].args)

			entry := final.all("ENTRYPOINT")
			require.Len(t, entry, 1)
			var argv []string
			require.NoError(t, json.Unmarshal([]byte(entry[0].args), &argv), "ENTRYPOINT in exec form (JSON array)")
			require.Equal(t, []string{"/" + prog.Name}, argv)

			exposed := final.all("EXPOSE")
			if prog.Port == 0 {
				require.Empty(t, exposed, "a CLI exposes no port")
			} else {
				require.Len(t, exposed, 1)
				require.Equal(t, strconv.Itoa(prog.Port), exposed[0].args)
			}

			ignore, err := os.ReadFile(filepath.Join(root(t), "deploy", "docker", prog.Name+".Dockerfile.dockerignore"))
			require.NoError(t, err, "BuildKit's per-Dockerfile ignore file keeps the context small")
			lines := strings.Split(string(ignore), "\n")
			require.Contains(t, lines, "*")
			require.Contains(t, lines, "!pkg/")
			require.Contains(t, lines, "!services/"+prog.Name+"/")
			for _, dir := range siblings {
				require.Contains(t, lines, "!services/"+dir+"/go.mod")
				require.Contains(t, lines, "!services/"+dir+"/go.sum")
			}
		})
	}
}

// replacedSiblings returns the services/ directories a service's go.mod
// replaces modules with ("=> ../mana-auth-dev" gives "mana-auth-dev"); the
// replacement of pkg (../../pkg) is not one of them.
func replacedSiblings(t *testing.T, gomod string) []string {
	t.Helper()
	data, err := os.ReadFile(gomod)
	require.NoError(t, err)
	var dirs []string
	for _, m := range replaceSibling.FindAllStringSubmatch(string(data), -1) {
		dirs = append(dirs, m[1])
	}
	return dirs
}

var replaceSibling = regexp.MustCompile(`(?m)=>\s*\.\./([A-Za-z0-9._-]+)\s*$`)

func TestGatewayDockerfile(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, filepath.Join(root(t), "deploy", "docker", "personas-gateway.Dockerfile"))
	require.Len(t, stages, 1)
	st := stages[0]
	require.True(t, strings.HasPrefix(st.image, "debian:"), "nginx from Debian, got %s", st.image)
	require.True(t, pinned(st.image), "base image %q is not pinned", st.image)
	require.Contains(t, st.all("RUN")[0].args, "apt-get install -y --no-install-recommends nginx")
	users := st.all("USER")
	require.NotEmpty(t, users)
	require.Equal(t, "65532:65532", users[len(users)-1].args)
	require.Equal(t, strconv.Itoa(repo.GatewayPort), st.all("EXPOSE")[0].args)
	require.Equal(t, "deploy/gateway/nginx.conf.template deploy/gateway/render.sh /etc/personas-gateway/", st.all("COPY")[0].args)
	var argv []string
	require.NoError(t, json.Unmarshal([]byte(st.all("ENTRYPOINT")[0].args), &argv))
	require.Equal(t, []string{"/bin/sh", "/etc/personas-gateway/render.sh", "--exec", "/run/personas-gateway"}, argv)
}

// TestImagesScript runs deploy/scripts/images.sh against a stand-in docker
// CLI that records its arguments: one build per Dockerfile, context the
// repository root, tagged REGISTRY/NAME:VERSION.
func TestImagesScript(t *testing.T) {
	t.Parallel()
	r := root(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "docker")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho \"$*\" >>"+log+"\n"), 0o755))

	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(r, "deploy", "scripts", "images.sh"), args...)
		cmd.Env = append(os.Environ(), append([]string{"DOCKER=" + fake}, env...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run([]string{"REGISTRY=registry.test/mana", "VERSION=1.2.3", "PUSH=1"})
	require.NoError(t, err, out)
	calls, err := os.ReadFile(log)
	require.NoError(t, err)
	var want []string
	for _, name := range []string{"personas-internal", "personas-admin", "personas-gateway", "personasctl", "mana-auth-dev"} {
		ref := "registry.test/mana/" + name + ":1.2.3"
		want = append(want,
			fmt.Sprintf("build --file %s/deploy/docker/%s.Dockerfile --tag %s %s", r, name, ref, r),
			"push "+ref)
		require.FileExists(t, filepath.Join(r, "deploy", "docker", name+".Dockerfile"))
	}
	require.Equal(t, want, strings.Split(strings.TrimSpace(string(calls)), "\n"))

	out, err = run([]string{"VERSION=latest"})
	require.Error(t, err)
	require.Contains(t, out, "fixed tag")
	out, err = run(nil, "no-such-image")
	require.Error(t, err)
	require.Contains(t, out, "no-such-image")
}

func TestPinned(t *testing.T) {
	t.Parallel()
	tests := []struct {
		image string
		want  bool
	}{
		{"golang:1.26", true},
		{"golang:1.26.1-bookworm", true},
		{"debian:12.12-slim", true},
		{"gcr.io/distroless/static-debian12:nonroot", true},
		{"gcr.io/distroless/static-debian12@sha256:0123abcd", true},
		{"golang", false},
		{"golang:latest", false},
		{"debian:bookworm", false},
		{"localhost:5000/golang", false},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, pinned(tc.image))
		})
	}
}

// TestProgramsBuildStatic builds every program exactly as its Dockerfile
// does (same directory, ENV and go build arguments, output in a temp dir) and
// checks the binary can run on distroless/static: no dynamic loader, no
// shared libraries, built with CGO off and trimmed paths, stripped.
func TestProgramsBuildStatic(t *testing.T) {
	t.Parallel()
	for _, prog := range repo.Programs {
		t.Run(prog.Name, func(t *testing.T) {
			t.Parallel()
			r := root(t)
			dir := filepath.Join(r, "services", prog.Name)
			_, err := os.Stat(filepath.Join(dir, "go.mod"))
			require.NoError(t, err, "services/%s does not exist yet: nothing to build", prog.Name)

			stages := parseDockerfile(t, filepath.Join(r, "deploy", "docker", prog.Name+".Dockerfile"))
			b := buildOf(t, goStage(stages))
			rel, err := filepath.Rel("/src", b.workdir)
			require.NoError(t, err)
			require.Equal(t, dir, filepath.Join(r, rel))

			out := filepath.Join(t.TempDir(), prog.Name)
			args := slices.Clone(b.args)
			args[slices.Index(args, "-o")+1] = out
			cmd := exec.Command("go", append([]string{"build"}, args...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), b.env...)
			output, err := cmd.CombinedOutput()
			require.NoError(t, err, "go build %v in services/%s (env %v):\n%s", args, prog.Name, b.env, output)

			f, err := elf.Open(out)
			require.NoError(t, err)
			defer f.Close()
			for _, p := range f.Progs {
				require.NotEqual(t, elf.PT_INTERP, p.Type, "dynamically linked: has a program interpreter")
				require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "dynamically linked: has a dynamic section")
			}
			libs, err := f.ImportedLibraries()
			require.NoError(t, err)
			require.Empty(t, libs)
			require.Nil(t, f.Section(".symtab"), "-s strips the symbol table")

			info, err := buildinfo.ReadFile(out)
			require.NoError(t, err)
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			require.Equal(t, "0", settings["CGO_ENABLED"])
			require.Equal(t, "true", settings["-trimpath"])
			// Go leaves -ldflags out of the build info under -trimpath; its
			// effect shows instead: -s drops .symtab (above), -w the DWARF.
			require.Nil(t, f.Section(".debug_info"), "-w drops the DWARF data")
		})
	}
}
