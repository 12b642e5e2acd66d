package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docFiles are the README and the docs walkthroughs, which users follow as
// typed: the tests below keep what they state about the binary true.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	paths, _ := filepath.Glob("../../docs/*.md")
	out := map[string]string{}
	for _, p := range append(paths, "../../README.md") {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(p, "../../")] = string(raw)
	}
	return out
}

var migratedLine = regexp.MustCompile(`schema is fully migrated \((\d+) migrations\)`)

// TestDocsMigrationCount checks the `paymentd check` output the docs show
// against the migrations the binary embeds: a new migration makes this fail
// until the walkthroughs say so.
func TestDocsMigrationCount(t *testing.T) {
	files, _ := filepath.Glob("../../store/migrations/*.sql")
	if len(files) == 0 {
		t.Fatal("no migrations found")
	}
	seen := 0
	for name, text := range docFiles(t) {
		for _, m := range migratedLine.FindAllStringSubmatch(text, -1) {
			seen++
			if n, _ := strconv.Atoi(m[1]); n != len(files) {
				t.Errorf("%s shows %q; the binary has %d migrations (store/migrations)", name, m[0], len(files))
			}
		}
	}
	if seen == 0 {
		t.Error("no walkthrough shows `paymentd check`'s migration line any more; drop this test or the docs lost it")
	}
}

var (
	flagRow  = regexp.MustCompile("(?m)^\\| *(`--[^|]*)\\|(.*)$")
	flagName = regexp.MustCompile("`--([a-z0-9-]+)`")
)

// TestDocsFlagDefaults checks every serve flag the README and docs tables
// name exists and has the default they give (`--ledger-checkpoint-entries`
// was documented as 1000 while the binary's was 1).
func TestDocsFlagDefaults(t *testing.T) {
	fs, _ := serveFlags(io.Discard)
	checked := 0
	for name, text := range docFiles(t) {
		for _, row := range flagRow.FindAllStringSubmatch(text, -1) {
			names := flagName.FindAllStringSubmatch(row[1], -1)
			var def string
			for _, cell := range strings.Split(row[2], "|") {
				if cell = strings.TrimSpace(cell); cell != "" && !strings.HasPrefix(cell, "`PAYMENTD_") {
					def = cell
					break
				}
			}
			defs := strings.Split(def, ", ")
			for i, n := range names {
				f := fs.Lookup(n[1])
				if f == nil {
					t.Errorf("%s documents --%s, which serve does not have", name, n[1])
					continue
				}
				if len(defs) != len(names) || strings.Contains(def, "PORT") {
					continue // one default for several flags, or one computed at start
				}
				checked++
				if want := strings.Trim(defs[i], "`"); !sameDefault(want, f.DefValue) {
					t.Errorf("%s gives --%s the default %q; serve's is %q", name, n[1], want, f.DefValue)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d documented defaults checked; the tables' format changed?", checked)
	}
}

// sameDefault compares a documented default with a flag's DefValue: "—"
// is empty, "off" is false, and durations compare by value.
func sameDefault(doc, def string) bool {
	switch doc {
	case "—", "-":
		doc = ""
	case "off":
		doc = "false"
	}
	if doc == def {
		return true
	}
	docParts, defParts := strings.Split(doc, ","), strings.Split(def, ",")
	if len(docParts) != len(defParts) {
		return false
	}
	for i := range docParts {
		a, err1 := time.ParseDuration(docParts[i])
		b, err2 := time.ParseDuration(defParts[i])
		if err1 != nil || err2 != nil || a != b {
			return false
		}
	}
	return true
}

// TestREADMEGoClientIsTheExample checks that the README's Go client snippet
// is, line for line, the body of Example_goClient, which go test compiles:
// the snippet cannot drift into code that does not build.
func TestREADMEGoClientIsTheExample(t *testing.T) {
	readme := docFiles(t)["README.md"]
	start := strings.Index(readme, "```go\nconn, err := grpc.NewClient(")
	if start < 0 {
		t.Fatal("README has no Go client snippet starting with grpc.NewClient")
	}
	snippet := readme[start+len("```go\n"):]
	snippet = snippet[:strings.Index(snippet, "```")]
	src, err := os.ReadFile("client_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	body = body[strings.Index(body, "func Example_goClient() {\n")+len("func Example_goClient() {\n"):]
	body = body[:strings.Index(body, "\n}\n")+1]
	var lines []string
	for _, l := range strings.SplitAfter(body, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	if got := strings.Join(lines, ""); got != snippet {
		t.Errorf("README's Go snippet:\n%s\ndiffers from Example_goClient's body:\n%s", snippet, got)
	}
}
