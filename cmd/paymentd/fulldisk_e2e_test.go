package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFullDiskOnRealFilesystemRecovers fills a real filesystem (a 3 MiB
// tmpfs; the test skips where it cannot mount one, e.g. without root) with
// the database on it, frees space, and requires that paymentd goes on
// taking writes without a restart. On a real disk, unlike under
// --db-max-pages, the WAL holds what was written since its last checkpoint,
// a page per change of every table and index each commit touched: had the
// server not checkpointed once space returned, those appends would eat the
// freed space and the disk would be full again after a few creates.
func TestFullDiskOnRealFilesystemRecovers(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); --db-max-pages stands in for a full disk in TestFullDiskAnswers503AndLosesNothing", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 1200<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, filepath.Join(mnt, "paymentd.db"))
	defer srv.stop()
	body := `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","description":"` + strings.Repeat("x", 900) + `"}`
	create := func(idem string) int {
		code, b, _ := srv.restDo(t, "POST", "/v1/payments", srv.key, idem, body)
		if code != 200 && code != 503 {
			t.Fatalf("create %s: %d %v; want 200 or 503", idem, code, b)
		}
		return code
	}
	refused, refusedKey := 0, ""
	for i := 0; i < 20000 && refused < 10; i++ {
		if create(fmt.Sprint("fill-", i)) == 503 {
			refused++
			refusedKey = fmt.Sprint("fill-", i)
		}
	}
	if refused == 0 {
		t.Fatal("the disk never filled")
	}

	// Space returns: as much as the filler held.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code := create(refusedKey); code != 200 {
		t.Fatalf("retry of a refused create once space returned: %d; want 200", code)
	}
	// 1.2 MiB takes well over 100 payments once the WAL is checkpointed.
	ok := 0
	for i := 0; i < 100; i++ {
		if create(fmt.Sprint("after-", i)) == 200 {
			ok++
		}
	}
	if ok != 100 {
		var sizes []string
		entries, _ := os.ReadDir(mnt)
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				sizes = append(sizes, fmt.Sprintf("%s %d", e.Name(), info.Size()))
			}
		}
		t.Errorf("after 1.2 MiB were freed, %d of 100 creates succeeded; want all (files: %s)", ok, strings.Join(sizes, ", "))
	}
}
