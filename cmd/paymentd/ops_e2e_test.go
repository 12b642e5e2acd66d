package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/paymentd/paymentd/store/storetest"
)

// getJSON GETs url and decodes its JSON object.
func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("GET %s: status %d, body is not JSON: %.200s", url, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func TestHealthAndReadiness(t *testing.T) {
	db := storetest.SQLitePath(t) // SQLite only: it removes a migration row through the file
	srv := startServer(t, db)

	if code, body := getJSON(t, srv.baseURL+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Errorf("/healthz = %d %v; want 200 ok", code, body)
	}
	code, body := getJSON(t, srv.baseURL+"/readyz")
	checks, _ := body["checks"].(map[string]any)
	if code != 200 || body["status"] != "ok" || len(checks) != 3 {
		t.Fatalf("/readyz = %d %v; want 200 ok with store, migrations and shutdown checks", code, body)
	}
	for _, name := range []string{"store", "migrations", "shutdown"} {
		if c, _ := checks[name].(map[string]any); c["status"] != "ok" {
			t.Errorf("/readyz check %s = %v; want ok", name, checks[name])
		}
	}

	// A migration the database has not applied makes the server unready,
	// naming it.
	rw, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	var last string
	if err := rw.QueryRow(`SELECT max(name) FROM schema_migrations`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Exec(`DELETE FROM schema_migrations WHERE name = ?`, last); err != nil {
		t.Fatal(err)
	}
	code, body = getJSON(t, srv.baseURL+"/readyz")
	checks, _ = body["checks"].(map[string]any)
	mig, _ := checks["migrations"].(map[string]any)
	if code != 503 || body["status"] != "unavailable" || mig["status"] != "failing" || !strings.Contains(mig["message"].(string), last) {
		t.Errorf("/readyz with %s unrecorded = %d %v; want 503 naming the migration", last, code, body)
	}
	if _, err := rw.Exec(`INSERT INTO schema_migrations (name, applied) VALUES (?, 0)`, last); err != nil {
		t.Fatal(err)
	}
	if code, _ := getJSON(t, srv.baseURL+"/readyz"); code != 200 {
		t.Errorf("/readyz after the migration is recorded again = %d; want 200", code)
	}
}

// TestGracefulShutdownReadiness checks that on shutdown /readyz turns 503
// and gRPC health NOT_SERVING together while both listeners still serve
// (for --shutdown-delay), and only then do the listeners close.
func TestGracefulShutdownReadiness(t *testing.T) {
	srv := startServer(t, testDB(t), "--shutdown-delay", "1500ms")
	// The health checks use a connection of their own: the harness closes
	// srv.conn as it stops.
	conn, err := grpc.NewClient(srv.conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)

	stopped := make(chan struct{})
	go func() { srv.stop(); close(stopped) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := getJSON(t, srv.baseURL+"/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 5s after shutdown began; want 503", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, body := getJSON(t, srv.baseURL+"/readyz")
	if c, _ := body["checks"].(map[string]any)["shutdown"].(map[string]any); c["status"] != "failing" {
		t.Errorf("/readyz during shutdown: %v; want the shutdown check failing", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
	cancel()
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health once /readyz is 503: %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	select {
	case <-stopped:
		t.Fatal("the server stopped before --shutdown-delay passed")
	default:
	}
	// Liveness still answers while draining.
	if code, _ := getJSON(t, srv.baseURL+"/healthz"); code != 200 {
		t.Errorf("/healthz while draining = %d; want 200", code)
	}
	<-stopped
	if _, err := http.Get(srv.baseURL + "/healthz"); err == nil {
		t.Error("the HTTP listener still answers after shutdown")
	}
}

func TestVersionCommand(t *testing.T) {
	out, _ := cli(t, "version")
	if want := "paymentd " + build().String() + "\n"; !strings.HasPrefix(out, want) {
		t.Errorf("paymentd version printed %q; want it to start with %q", out, want)
	}
}

// TestVersionOfBuiltBinary builds the binary the way the README says and
// checks that `paymentd version` shows the git revision it was built from,
// and that -ldflags -X sets the version.
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		// The go command stamps VCS information only where .git is a
		// directory, which it is not in a `git worktree`.
		t.Skip("in a git worktree, where the go command records no VCS information")
	}
	bin := filepath.Join(t.TempDir(), "paymentd")
	cmd := exec.Command("go", "build", "-buildvcs=true", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	short := strings.TrimSpace(string(rev))[:12]
	if !strings.HasPrefix(string(out), "paymentd v9.8.7+"+short) || !strings.Contains(string(out), "revision "+strings.TrimSpace(string(rev))) {
		t.Errorf("built binary's version:\n%s\nwant v9.8.7+%s and revision %s", out, short, rev)
	}
}
