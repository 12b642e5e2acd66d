package service

import (
	"encoding/hex"
	"strings"
	"testing"
)

// The encoders are checked against the published vectors: BIP 173 for
// bech32 and the base58check form of the same key hash (bitcoin's P2PKH
// 1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH), which exercises the leading-zero rule.
func TestDepositAddressEncodings(t *testing.T) {
	program, _ := hex.DecodeString("751e76e8199196d454941c45d1b3a323f1433bd6")
	for _, tc := range []struct{ got, want string }{
		{depositSegwitAddress("bc", program), "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"},
		{depositSegwitAddress("tb", program), "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"},
		{base58Check(append([]byte{0x00}, program...)), "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s; want %s", tc.got, tc.want)
		}
	}
}

func TestSandboxDepositAddress(t *testing.T) {
	tron := sandboxDepositAddress("acct_1", false, "USDT", "tron", "cus_1", "inv_a")
	if len(tron) != 34 || tron[0] != 'T' || strings.ContainsAny(tron, "0OIl") {
		t.Errorf("tron address %q; want 34 base58 characters starting with T", tron)
	}
	for _, tc := range []struct {
		name  string
		other string
		same  bool
	}{
		{"same customer, another invoice", sandboxDepositAddress("acct_1", false, "USDT", "tron", "cus_1", "inv_b"), true},
		{"another customer", sandboxDepositAddress("acct_1", false, "USDT", "tron", "cus_2", "inv_a"), false},
		{"another account", sandboxDepositAddress("acct_2", false, "USDT", "tron", "cus_1", "inv_a"), false},
		{"live mode", sandboxDepositAddress("acct_1", true, "USDT", "tron", "cus_1", "inv_a"), false},
		{"no customer", sandboxDepositAddress("acct_1", false, "USDT", "tron", "", "inv_a"), false},
	} {
		if (tc.other == tron) != tc.same {
			t.Errorf("%s: %s vs %s; want same=%v", tc.name, tc.other, tron, tc.same)
		}
	}
	if a, b := sandboxDepositAddress("acct_1", false, "USDT", "tron", "", "inv_a"), sandboxDepositAddress("acct_1", false, "USDT", "tron", "", "inv_b"); a == b {
		t.Errorf("invoices without a customer share the address %s; want one each", a)
	}
	if eth := sandboxDepositAddress("acct_1", false, "USDT", "ethereum", "cus_1", "inv_a"); len(eth) != 42 || !strings.HasPrefix(eth, "0x") {
		t.Errorf("ethereum address %q; want 0x and 40 hex digits", eth)
	}
	if btc := sandboxDepositAddress("acct_1", true, "BTC", "bitcoin", "cus_1", "inv_a"); len(btc) != 42 || !strings.HasPrefix(btc, "bc1q") {
		t.Errorf("live bitcoin address %q; want a bc1q… P2WPKH address", btc)
	}
}
