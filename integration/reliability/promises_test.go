package reliability

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is where the packages the checks name live, from this package's
// folder (integration/reliability).
const repoRoot = "../.."

// testFunctions parses a package's test files and returns its Test and Fuzz
// functions.
func testFunctions(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, pkg, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s: %v", pkg, err)
	}
	found := map[string]bool{}
	for _, file := range files {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil {
				found[fn.Name.Name] = true
			}
		}
	}
	return found
}

// scenarioNames returns the name of every scenarioSpec the integration tests
// declare.
func scenarioNames(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "integration", "*_test.go"))
	names := map[string]bool{}
	for _, file := range files {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			if typ, ok := lit.Type.(*ast.Ident); !ok || typ.Name != "scenarioSpec" {
				return true
			}
			for _, elt := range lit.Elts {
				kv, ok := elt.(*ast.KeyValueExpr)
				if key, isIdent := kv.Key.(*ast.Ident); ok && isIdent && key.Name == "name" {
					if value, ok := kv.Value.(*ast.BasicLit); ok {
						name, _ := strconv.Unquote(value.Value)
						names[name] = true
					}
				}
			}
			return true
		})
	}
	return names
}

// The document says which test checks each promise: every test it names
// must exist, every scenario it names must be one the tests run, and every
// scenario must serve a promise.
func TestPromisesNameRealTestsAndScenarios(t *testing.T) {
	functions := map[string]map[string]bool{}
	scenarios := scenarioNames(t)
	served := map[string]bool{}
	for _, p := range Promises {
		if p.Scenario != "" {
			served[p.Scenario] = true
			if !scenarios[p.Scenario] {
				t.Errorf("promise %q names scenario %q, which no test declares", p.What, p.Scenario)
			}
		}
		if len(p.Checks) == 0 {
			t.Errorf("promise %q has no check", p.What)
		}
		for _, c := range p.Checks {
			if functions[c.Package] == nil {
				functions[c.Package] = testFunctions(t, c.Package)
			}
			top, _, _ := strings.Cut(c.Test, "/")
			if !functions[c.Package][top] {
				t.Errorf("promise %q names %s in %s, which does not exist", p.What, top, c.Package)
			}
		}
	}
	for name := range scenarios {
		if !served[name] {
			t.Errorf("scenario %q serves no promise: add it to Promises", name)
		}
	}
}

func TestCheckCommand(t *testing.T) {
	got := Check{"integration", "TestDocker/containerd-v2.4.2/teach/live-restore"}.Command()
	want := `go test ./integration/ -run '^TestDocker$/^containerd-v2.4.2$/^teach$/^live-restore$'`
	if got != want {
		t.Errorf("command %s, want %s", got, want)
	}
}
