package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store/storetest"
)

// testServer is a paymentd started by run("serve", …) in this process, on
// random loopback ports, with a real gRPC client and the REST base URL.
type testServer struct {
	db       string
	conn     *grpc.ClientConn
	payments pb.PaymentsServiceClient
	status   pb.StatusServiceClient
	baseURL  string // e.g. http://127.0.0.1:41234
	// key is the test key serve prints on an empty database; it is empty
	// when the server was started on a database that already had an account.
	key string
	// log is everything serve wrote to stderr (the JSON log), when started
	// by startServer.
	log *syncBuffer

	stopOnce sync.Once
	stopFn   func()
}

var (
	servingLine = regexp.MustCompile(`serving gRPC on (\S+) and HTTP on (\S+) \(database `)
	testKeyLine = regexp.MustCompile(`\b(ak_test_[0-9A-Za-z]{32})\b`)
)

// noEnv keeps the PAYMENTD_* variables of the machine running the tests out
// of the server's configuration.
func noEnv(string) string { return "" }

// testDB returns the database a test's server runs on: a new SQLite file in
// the test's temporary directory by default, a fresh PostgreSQL database
// (storetest.PostgresDSN) when PAYMENTD_TEST_STORE=postgres, so that the same
// e2e tests run on both backends. Tests that need the database file itself
// (kill -9 of SQLite, a full disk, the WAL, VACUUM INTO) use
// storetest.SQLitePath directly and say so.
func testDB(t *testing.T) string {
	t.Helper()
	switch store := os.Getenv("PAYMENTD_TEST_STORE"); store {
	case "", "sqlite":
		return storetest.SQLitePath(t)
	case "postgres":
		return storetest.PostgresDSN(t)
	default:
		t.Fatalf("PAYMENTD_TEST_STORE=%q; want sqlite (the default) or postgres", store)
		return ""
	}
}

// rawDB opens the database of a test server behind paymentd's back, to read
// rows the API does not show: the pgx driver for a postgres:// DSN, SQLite
// (read-only) for a path. Queries use $1-style placeholders, which both read.
func rawDB(t *testing.T, db string) *sql.DB {
	t.Helper()
	return openDB(t, db, "file:"+db+"?mode=ro&_pragma=busy_timeout(5000)")
}

// writableDB is rawDB for a test that changes rows behind paymentd's back
// (with no server running on the database).
func writableDB(t *testing.T, db string) *sql.DB {
	t.Helper()
	return openDB(t, db, "file:"+db+"?_pragma=busy_timeout(5000)")
}

func openDB(t *testing.T, db, sqliteDSN string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", sqliteDSN
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		driver, dsn = "pgx", db
	}
	conn, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// startServer runs `paymentd serve` on dbPath with rate limiting off (extra
// arguments come last, so they can turn it back on), waits until its health
// service reports SERVING, and stops it when the test ends.
func startServer(t *testing.T, dbPath string, extraArgs ...string) *testServer {
	t.Helper()
	args := append([]string{"serve", "--db", dbPath, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--rate-limit", "-1"}, extraArgs...)
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, noEnv, stdoutW, stderr)
		stdoutW.Close()
		done <- err
	}()

	// Read stdout to its end, so that the server never blocks writing to it;
	// report the key and the addresses once the serving line is seen.
	type startup struct{ key, grpcAddr, httpAddr string }
	ready := make(chan startup, 1)
	go func() {
		var st startup
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			if m := testKeyLine.FindStringSubmatch(sc.Text()); m != nil && st.key == "" {
				st.key = m[1]
			}
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				st.grpcAddr, st.httpAddr = m[1], m[2]
				ready <- st
			}
		}
		_, _ = io.Copy(io.Discard, stdoutR)
	}()

	var st startup
	select {
	case st = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve returned before serving: %v\nstderr:\n%s", err, stderr)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("serve did not print its addresses within 15s\nstderr:\n%s", stderr)
	}

	conn, err := grpc.NewClient(st.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &testServer{
		db: dbPath, conn: conn, key: st.key, baseURL: "http://" + st.httpAddr, log: stderr,
		payments: pb.NewPaymentsServiceClient(conn), status: pb.NewStatusServiceClient(conn),
	}
	s.stopFn = func() {
		conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v after its context was canceled; want nil", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not return within 20s of its context being canceled")
		}
		checkLogAttribution(t, stderr.String())
		if t.Failed() {
			lines := strings.SplitAfter(stderr.String(), "\n")
			t.Logf("server log (%s), last lines:\n%s", dbPath, strings.Join(lines[max(0, len(lines)-30):], ""))
		}
	}
	t.Cleanup(s.stop)
	waitServing(t, conn)
	return s
}

// stop cancels the server's context and waits for run to return nil; the
// database can then be opened by another server.
func (s *testServer) stop() { s.stopOnce.Do(s.stopFn) }

func waitServing(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health check: %v, %v; want SERVING", resp.GetStatus(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withKey adds the bearer key to the outgoing gRPC metadata.
func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// withIdem adds an idempotency key to the outgoing gRPC metadata.
func withIdem(ctx context.Context, idemKey string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "idempotency-key", idemKey)
}

// restDo sends one REST request (no Authorization header when key is empty,
// no Idempotency-Key when idemKey is empty, no body when body is empty) and
// decodes the JSON object it answers.
func (s *testServer) restDo(t *testing.T, method, path, key, idemKey, body string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: status %d, body is not a JSON object (%v): %.300s", method, path, resp.StatusCode, err, raw)
	}
	return resp.StatusCode, out, resp.Header
}

// cli runs one non-serve paymentd command and returns its stdout and stderr.
func cli(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("paymentd %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String()
}

var createdKeyLine = regexp.MustCompile(`Created (?:test|live) key (key_\S+) `)

// createKey makes an API key with `paymentd keys create` (account "" means
// the first account) and returns the secret and the key's id.
func createKey(t *testing.T, db, mode, scopes, account string) (secret, id string) {
	t.Helper()
	args := []string{"keys", "create", "--db", db, "--mode", mode, "--scopes", scopes}
	if account != "" {
		args = append(args, "--account", account)
	}
	out, errOut := cli(t, args...)
	secret = strings.TrimSpace(out)
	if !strings.HasPrefix(secret, "ak_"+mode+"_") {
		t.Fatalf("keys create printed %q; want an ak_%s_ key", secret, mode)
	}
	m := createdKeyLine.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("keys create did not name the key's id on stderr: %q", errOut)
	}
	return secret, m[1]
}

// createAccount makes an account with `paymentd accounts create` and returns its id.
func createAccount(t *testing.T, db, name string) string {
	t.Helper()
	out, _ := cli(t, "accounts", "create", "--db", db, "--name", name)
	id := strings.TrimSpace(out)
	if !strings.HasPrefix(id, "acct_") {
		t.Fatalf("accounts create printed %q; want an acct_ id", id)
	}
	return id
}

// apiError is an error as a caller sees it: the gRPC code and the ErrorInfo
// detail's code and param, or the REST status and the body's error object.
type apiError struct {
	grpcCode   codes.Code
	httpStatus int
	errType    string
	code       string
	param      string
}

// grpcError reads the code, type, code and param of a gRPC error carrying a
// google.rpc.ErrorInfo, and checks that the detail's reason is the code in
// UPPER_SNAKE.
func grpcError(t *testing.T, err error) apiError {
	t.Helper()
	if err == nil {
		t.Fatal("call succeeded; want an error")
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a gRPC status", err)
	}
	got := apiError{grpcCode: st.Code()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			got.errType, got.code, got.param = info.Metadata["type"], info.Metadata["code"], info.Metadata["param"]
			if info.Reason != strings.ToUpper(got.code) {
				t.Errorf("ErrorInfo reason %q; want %q", info.Reason, strings.ToUpper(got.code))
			}
		}
	}
	if got.code == "" {
		t.Fatalf("error %v has no ErrorInfo detail with a code", err)
	}
	return got
}

// restError reads the {"error":{…}} body of a REST error response.
func restError(t *testing.T, httpStatus int, body map[string]any) apiError {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("status %d with body %v; want an {\"error\":{…}} body", httpStatus, body)
	}
	str := func(k string) string { s, _ := e[k].(string); return s }
	if str("message") == "" {
		t.Errorf("error body %v has no message", e)
	}
	return apiError{httpStatus: httpStatus, errType: str("type"), code: str("code"), param: str("param")}
}

// syncBuffer collects the server's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
