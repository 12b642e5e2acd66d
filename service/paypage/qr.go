package paypage

import (
	"fmt"
	"html/template"
	"strings"

	qrcode "github.com/yeqown/go-qrcode/v2"

	"github.com/paymentd/paymentd"
)

// The deposit address of a crypto invoice is shown as a QR code that a
// wallet app scans, drawn on the server as inline SVG: one <path> of the
// dark modules, with no style attribute, script or external reference, so
// the page's content security policy needs no exception for it.

// depositURI is what the QR code holds: a payment URI where the network has
// one that wallets commonly read (BIP 21 for bitcoin, with the amount due in
// BTC), the plain address otherwise. Tron has no common URI scheme, and the
// ethereum one for tokens (EIP-681) needs the token's contract address,
// which a sandbox invoice does not have; wallets read plain addresses.
func depositURI(network, address string, due int64, c paymentd.Currency) string {
	if network == "bitcoin" && due > 0 {
		return "bitcoin:" + address + "?amount=" + strings.TrimRight(strings.TrimRight(paymentd.FormatAmount(due, c), "0"), ".")
	}
	return address
}

// qrMatrix is a qrcode.Writer that keeps the code's modules.
type qrMatrix struct{ bits [][]bool }

func (m *qrMatrix) Write(mat qrcode.Matrix) error { m.bits = mat.Bitmap(); return nil }
func (m *qrMatrix) Close() error                  { return nil }

// qrSVG draws text as a QR code (error correction level M, a four-module
// quiet zone) in inline SVG, labelled for screen readers by label.
func qrSVG(text, label string) (template.HTML, error) {
	qr, err := qrcode.NewWith(text, qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionMedium))
	if err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	var m qrMatrix
	if err := qr.Save(&m); err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	const quiet = 4
	size := len(m.bits) + 2*quiet
	var path strings.Builder
	for y, row := range m.bits {
		for x := 0; x < len(row); x++ {
			if !row[x] {
				continue
			}
			run := 1
			for x+run < len(row) && row[x+run] {
				run++
			}
			fmt.Fprintf(&path, "M%d %dh%dv1h-%dz", x+quiet, y+quiet, run, run)
			x += run - 1
		}
	}
	// Every value below is a number or the escaped label: nothing typed by
	// anyone reaches the markup unescaped.
	return template.HTML(fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="qr-title" shape-rendering="crispEdges"><title id="qr-title">%s</title><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`,
		size, size, size*4, size*4, template.HTMLEscapeString(label), size, size, path.String())), nil
}
