// Package layout holds the test that keeps eddy's package dependencies
// pointing one way, as docs/DESIGN.md draws them.
package layout

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/eddyflow/eddy"

// allowed lists, for every package of the module, the module's packages
// it may import. A new package must be added here, with the arrows
// docs/DESIGN.md gives it. "*" allows any package of the module.
var allowed = map[string][]string{
	"window":               {},
	"serde":                {"window"},
	"internal/murmur2":     {},
	"internal/pebbleguard": {},
	"internal/cmalloc":     {},
	"state":                {"internal/pebbleguard"},
	"broker":               {},
	"operators":            {"serde", "window", "state", "internal/murmur2"},
	"topology":             {"operators", "serde", "window", "state", "internal/murmur2"},
	"broker/embedded":      {"broker", "internal/murmur2", "internal/pebbleguard"},
	"broker/kafka":         {"broker", "internal/murmur2"},
	"broker/brokertest":    {"broker"},
	"engine":               {"broker", "broker/embedded", "broker/kafka", "state", "operators", "topology", "internal/murmur2", "internal/cmalloc"},
	"eddytest":             {"broker", "engine", "serde", "topology", "window"},
	"cmd/eddy":             {"*"},
	"internal/layout":      {},
}

// free are trees whose packages may import anything public.
var free = []string{"examples", "benchmarks"}

func TestDependencyArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		if slices.ContainsFunc(free, func(p string) bool { return pkg == p || strings.HasPrefix(pkg, p+"/") }) {
			for _, imp := range fields[1:] {
				if strings.HasPrefix(imp, module+"/internal/") {
					t.Errorf("%s imports %s: examples and benchmarks use the public API only", pkg, imp)
				}
			}
			continue
		}
		ok, known := allowed[pkg]
		if !known {
			t.Errorf("package %s is not in the layout table: add it with its allowed imports (see docs/DESIGN.md)", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !slices.Contains(ok, "*") && !slices.Contains(ok, dep) {
				t.Errorf("%s imports %s, against the dependency arrows of docs/DESIGN.md", pkg, dep)
			}
		}
	}
}
