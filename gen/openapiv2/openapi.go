// Package openapiv2 embeds the OpenAPI document that protoc-gen-openapiv2
// generates beside this file. This file is the only hand-written one under gen/.
package openapiv2

import _ "embed"

// JSON is the OpenAPI v2 document for paymentd's REST API.
//
//go:embed paymentd.swagger.json
var JSON []byte
