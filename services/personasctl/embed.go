package main

import _ "embed" // for the built-in catalog

// builtinCatalog is catalog/personas.json as it was when the binary was
// built. It is the default of --catalog, so the binary works from any
// directory; `go run ./services/personasctl` rebuilds it from the file.
//
//go:embed catalog/personas.json
var builtinCatalog []byte

// builtinCatalogName names the built-in catalog in messages.
const builtinCatalogName = "built-in catalog (services/personasctl/catalog/personas.json)"
