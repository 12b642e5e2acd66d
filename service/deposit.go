package service

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// invoiceNetwork is a network a crypto asset can be paid on, with the
// confirmations a transfer needs before it counts.
type invoiceNetwork struct {
	Name          string
	Confirmations int
}

// invoiceNetworks lists, per crypto asset of the currency table, the networks
// invoices accept. Confirmations follow what crypto providers ask for: 30 on
// tron is alppay's documented confirmsNeeded for USDT on tron; 12 on
// ethereum and 3 on bitcoin are common practice.
var invoiceNetworks = map[string][]invoiceNetwork{
	"USDT": {{"tron", 30}, {"ethereum", 12}},
	"USDC": {{"ethereum", 12}},
	"BTC":  {{"bitcoin", 3}},
}

// isCryptoAsset reports whether the currency code is a crypto asset, which
// needs a network.
func isCryptoAsset(code string) bool { _, ok := invoiceNetworks[code]; return ok }

func invoiceNetworkNames(asset string) []string {
	var names []string
	for _, n := range invoiceNetworks[asset] {
		names = append(names, n.Name)
	}
	return names
}

func lookupInvoiceNetwork(asset, name string) (invoiceNetwork, bool) {
	i := slices.IndexFunc(invoiceNetworks[asset], func(n invoiceNetwork) bool { return n.Name == name })
	if i < 0 {
		return invoiceNetwork{}, false
	}
	return invoiceNetworks[asset][i], true
}

// sandboxDepositAddress derives the deposit address of a sandbox crypto
// invoice. It is deterministic, so one customer (the caller's customer id,
// like alppay's clientId) keeps one address per account, mode, asset and
// network across invoices; an invoice without a customer id gets an address
// of its own, derived from the invoice id. The address is the first 20 bytes
// of SHA-256 over those values, written in the network's address format
// (tron base58check, ethereum hex, bitcoin bech32 P2WPKH): it looks real
// and validates, but no key controls it. It is a sandbox address: live
// invoices get their addresses from the provider.
func sandboxDepositAddress(accountID string, livemode bool, asset, network, customerID, invoiceID string) string {
	owner := "customer\x00" + customerID
	if customerID == "" {
		owner = "invoice\x00" + invoiceID
	}
	mode := "test"
	if livemode {
		mode = "live"
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{"paymentd deposit address v1", accountID, mode, asset, network, owner}, "\x00")))
	hash := sum[:20]
	switch network {
	case "tron":
		return base58Check(append([]byte{0x41}, hash...))
	case "bitcoin":
		hrp := "tb" // testnet addresses in test mode, so none is mistaken for a real one
		if livemode {
			hrp = "bc"
		}
		return depositSegwitAddress(hrp, hash)
	default: // ethereum and other EVM networks
		return "0x" + hex.EncodeToString(hash)
	}
}

const depositBech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// depositSegwitAddress writes a version-0 witness program as a bech32 address (BIP 173).
func depositSegwitAddress(hrp string, program []byte) string {
	data := []byte{0} // witness version 0
	// Regroup 8-bit bytes into 5-bit groups, padding the last one.
	acc, bits := 0, 0
	for _, b := range program {
		acc = acc<<8 | int(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			data = append(data, byte(acc>>bits&31))
		}
	}
	if bits > 0 {
		data = append(data, byte(acc<<(5-bits)&31))
	}
	values := make([]byte, 0, 2*len(hrp)+1+len(data)+6)
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]>>5)
	}
	values = append(values, 0)
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]&31)
	}
	values = append(values, data...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	pm := depositBech32Polymod(values) ^ 1
	var b strings.Builder
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, d := range data {
		b.WriteByte(depositBech32Charset[d])
	}
	for i := range 6 {
		b.WriteByte(depositBech32Charset[(pm>>(5*(5-i)))&31])
	}
	return b.String()
}

func depositBech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}
