package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tsTools is where .ci/run installs the TypeScript tool chain with npm
// (openapi-typescript, openapi-fetch, typescript), as it does axe-core.
var tsTools = filepath.Join("..", "..", ".ci", "node", "node_modules")

// TestTypeScriptClient generates a TypeScript client from the running
// server's /openapi.json (converted to OpenAPI 3.0 by kin-openapi) with
// openapi-typescript, compiles testdata/tsclient/walkthrough.ts against it
// with tsc --strict, and runs it with node against the same server: a
// client in another language, generated from the document alone, makes
// payments, a capture, a refund, an invoice and a payout and reads paymentd's
// errors. Outside CI it is skipped when the tools are not installed
// (npm install --prefix .ci/node openapi-typescript@7.13.0 openapi-fetch@0.17.0 typescript@5.9.3).
func TestTypeScriptClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if _, statErr := os.Stat(filepath.Join(tsTools, ".bin", "tsc")); err != nil || statErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node or the TypeScript tools under %s are missing; .ci/run installs them", tsTools)
		}
		t.Skipf("node or the TypeScript tools under %s are not installed", tsTools)
	}
	abs, err := filepath.Abs(tsTools)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, testDB(t))
	_, doc3 := loadOpenAPI(t, s.baseURL)
	dir := t.TempDir()
	raw, err := json.Marshal(doc3)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "openapi.json"), raw, 0o644))
	for _, f := range []string{"walkthrough.ts", "tsconfig.json"} {
		src, err := os.ReadFile(filepath.Join("testdata", "tsclient", f))
		must(err)
		must(os.WriteFile(filepath.Join(dir, f), src, 0o644))
	}
	must(os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"type":"module","private":true}`), 0o644))
	must(os.Symlink(abs, filepath.Join(dir, "node_modules")))

	run := func(env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(nil, node, filepath.Join(abs, ".bin", "openapi-typescript"), "openapi.json", "-o", "paymentd.ts")
	run(nil, node, filepath.Join(abs, ".bin", "tsc"), "-p", ".")
	out := run([]string{"PAYMENTD_URL=" + s.baseURL, "PAYMENTD_KEY=" + s.key}, node, filepath.Join("out", "walkthrough.js"))
	if !strings.Contains(out, "typescript walkthrough:") {
		t.Errorf("the TypeScript walkthrough printed %q", out)
	}
	t.Log(strings.TrimSpace(out))
}
