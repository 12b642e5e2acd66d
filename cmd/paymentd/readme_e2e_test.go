package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeBlock is one ```sh block of the README and what the README shows
// right after it, if anything (a ```json or plain ``` block).
type readmeBlock struct {
	script, shown string
}

var readmeFence = regexp.MustCompile("(?s)```sh\n(.*?)```\n(?:```[a-z]*\n(.*?)```\n)?")

// readmeBlocks returns the sh blocks of the README between the headings from
// and to.
func readmeBlocks(t *testing.T, from, to string) []readmeBlock {
	t.Helper()
	text := docFiles(t)["README.md"]
	start, end := strings.Index(text, from), strings.Index(text, to)
	if start < 0 || end < start {
		t.Fatalf("README has no section %q … %q", from, to)
	}
	var out []readmeBlock
	for _, m := range readmeFence.FindAllStringSubmatch(text[start:end], -1) {
		out = append(out, readmeBlock{script: m[1], shown: m[2]})
	}
	return out
}

// typedCommands are a block's commands as a user would type them into a
// shell already running `paymentd serve` with $KEY set: backslash
// continuations joined, and the commands that start the server or set the
// key (done by the test) left out.
func typedCommands(script string) []string {
	var cmds []string
	cur := ""
	for _, line := range strings.Split(script, "\n") {
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		c := strings.TrimSpace(cur)
		cur = ""
		if c == "" || strings.HasPrefix(c, "#") || strings.Contains(c, "paymentd serve") || strings.HasPrefix(c, "export KEY=") {
			continue
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// TestREADMEWalkthroughsRun runs the README's curl and payout walkthroughs
// as typed, in order, in one bash against a live server (only the address
// and the database path are the test's): every block must print what the
// README says it prints — an error body exactly where the README shows one,
// JSON otherwise — and the payout must complete within the watch loop.
func TestREADMEWalkthroughsRun(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (the walkthroughs use it)", tool)
		}
	}
	s := startServer(t, testDB(t))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wrapper := "#!/bin/sh\nexec env " + runAsMainEnv + "=1 " + exe + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "paymentd"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.baseURL, "http://")
	adapt := func(c string) string {
		c = strings.ReplaceAll(c, "http://localhost:8080", s.baseURL)
		c = strings.ReplaceAll(c, "localhost:8080", host)
		c = strings.ReplaceAll(c, "go run ./cmd/paymentd", filepath.Join(dir, "paymentd"))
		return strings.ReplaceAll(c, "--db paymentd.db", "--db "+s.db)
	}

	blocks := append(readmeBlocks(t, "## Walkthrough with curl", "## Walkthrough with grpcurl"),
		readmeBlocks(t, "## Payouts and balances", "The same calls over gRPC")...)
	var script strings.Builder
	script.WriteString("set -u\nexport KEY=" + s.key + "\n")
	ran := 0
	for i, b := range blocks {
		cmds := typedCommands(b.script)
		if len(cmds) == 0 {
			continue
		}
		script.WriteString("echo '@@block " + string(rune('A'+i)) + "'\n")
		for _, c := range cmds {
			script.WriteString(adapt(c) + "\n")
		}
		script.WriteString("echo\n")
		ran++
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the walkthrough's shell exited with %v:\n%s", err, out)
	}
	parts := strings.Split(string(out), "@@block ")[1:]
	if len(parts) != ran || ran < 10 {
		t.Fatalf("%d blocks ran, %d printed (want ≥ 10):\n%s", ran, len(parts), out)
	}
	i := 0
	for _, b := range blocks {
		if len(typedCommands(b.script)) == 0 {
			continue
		}
		got := parts[i]
		i++
		first := strings.SplitN(strings.TrimSpace(b.script), "\n", 2)[0]
		wantError := strings.Contains(b.shown, `"error"`)
		switch {
		case wantError != strings.Contains(got, `"error":{`):
			t.Errorf("block %q: the README shows an error: %v; it printed:\n%s", first, wantError, got)
		case !strings.Contains(got, "{") && !strings.Contains(got, `"status"`) && !strings.Contains(got, "ok "):
			t.Errorf("block %q printed no JSON:\n%s", first, got)
		}
		if strings.HasPrefix(first, "for i in") {
			lines := strings.Fields(strings.TrimSpace(got))
			if len(lines) == 0 || lines[len(lines)-1] != `"status":"completed"` {
				t.Errorf("the payout did not complete within the README's watch loop:\n%s", got)
			}
		}
		if strings.Contains(first, "paymentd check") && !strings.Contains(got, "All 7 checks passed.") {
			t.Errorf("paymentd check after the walkthrough:\n%s", got)
		}
	}
	t.Logf("%d README blocks ran as typed", ran)
}
