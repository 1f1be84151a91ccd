module github.com/mana/personas/services/personasctl

go 1.26.0

require (
	github.com/mana/personas/pkg v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/text v0.44.0 // indirect
)

replace github.com/mana/personas/pkg => ../../pkg
