// Package api holds the wire types of coconutd's local API (version 1): the
// JSON bodies of the eight calls and the error envelope. The OpenAPI document
// beside it (openapi.yaml) describes the same paths for other languages.
//
// Field names here are a contract shared with the CLI's --json output
// (docs/cli.md): add fields, never rename them.
package api
