package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// TestCrashLosesNoAcknowledgedPayment builds the real binary, serves on a
// fresh database, drives concurrent CreatePayment calls, kills the process
// with SIGKILL in the middle of them, and then checks the file: it passes
// PRAGMA integrity_check, every payment the server acknowledged is there
// with its event and ledger entries, and no payment is there without them.
func TestCrashLosesNoAcknowledgedPayment(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "paymentd")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "crash.db")
	cmd := exec.Command(bin, "serve", "--db", db, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--rate-limit", "-1", "--log-level", "error")
	cmd.Env = append(os.Environ(), "PAYMENTD_SYNCHRONOUS=FULL")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var key, grpcAddr string
	sc := bufio.NewScanner(stdout)
	for grpcAddr == "" && sc.Scan() {
		if m := testKeyLine.FindStringSubmatch(sc.Text()); m != nil {
			key = m[1]
		}
		if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
			grpcAddr = m[1]
		}
	}
	if key == "" || grpcAddr == "" {
		t.Fatalf("server did not start (key %q, addr %q)", key, grpcAddr)
	}
	go func() { // keep draining stdout
		for sc.Scan() {
		}
	}()

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewPaymentsServiceClient(conn)
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key))
	defer cancel()

	var mu sync.Mutex
	acked := map[string]string{} // payment id → status
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				method := "pm_card_visa"
				if i%5 == 4 {
					method = "pm_card_declined" // failed payments are state changes too
				}
				ictx := metadata.AppendToOutgoingContext(ctx, "idempotency-key", fmt.Sprintf("crash-%d-%d", w, i))
				resp, err := client.CreatePayment(ictx, &pb.CreatePaymentRequest{Amount: 1000, Currency: "USD", PaymentMethod: method})
				if err != nil {
					continue // declined, or cut off by the kill: not acknowledged as created
				}
				mu.Lock()
				acked[resp.Payment.Id] = resp.Payment.Status
				mu.Unlock()
			}
		}()
	}
	// Let the load build up, then kill the server in the middle of it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 2000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	cancel()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no payment was acknowledged before the kill")
	}

	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bg := context.Background()
	if res, err := st.IntegrityCheck(bg); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
	accts, err := st.Accounts(bg)
	if err != nil || len(accts) != 1 {
		t.Fatalf("accounts: %v, %v", accts, err)
	}
	acct := accts[0].ID
	for id, status := range acked {
		p, err := st.GetPayment(bg, acct, false, id)
		if err != nil {
			t.Fatalf("acknowledged payment %s lost: %v", id, err)
		}
		if p.Status != status {
			t.Errorf("payment %s: status %s, acknowledged as %s", id, p.Status, status)
		}
	}
	// No half-written payment: every payment on disk, acknowledged or not,
	// has its event, and succeeded ones their balanced ledger entries.
	checked := 0
	for page := (store.PageFilter{AccountID: acct, Limit: 500}); ; {
		ps, err := st.ListPayments(bg, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			checked++
			evs, err := st.EventsFor(bg, acct, false, p.ID)
			if err != nil || len(evs) != 1 {
				t.Fatalf("payment %s has %d events (%v), want 1", p.ID, len(evs), err)
			}
			entries, err := st.LedgerEntriesFor(bg, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			var sum, credited int64
			for _, e := range entries {
				sum += e.Amount
				if e.Book == "available" {
					credited += e.Amount
				}
			}
			if sum != 0 || credited != p.AmountCaptured {
				t.Fatalf("payment %s (%s): ledger sums to %d and credits %d, captured %d", p.ID, p.Status, sum, credited, p.AmountCaptured)
			}
		}
		if len(ps) < page.Limit {
			break
		}
		page.Before = ps[len(ps)-1].ID
	}
	if checked < len(acked) {
		t.Fatalf("%d payments on disk, %d acknowledged", checked, len(acked))
	}
	t.Logf("killed after %d acknowledged payments; %d on disk, all consistent", len(acked), checked)
}
