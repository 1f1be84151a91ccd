package edge

import (
	"github.com/mana/personas/pkg/errs"

	fastjson "github.com/goccy/go-json"
	"github.com/labstack/echo/v4"
)

// jsonSerializer is echo's JSON (de)serializer on goccy/go-json, which
// produces the same documents as encoding/json several times faster; the
// runner's /due answers carry hundreds of prompts.
type jsonSerializer struct{}

func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	enc := fastjson.NewEncoder(c.Response())
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

func (jsonSerializer) Deserialize(c echo.Context, i any) error {
	err := fastjson.NewDecoder(c.Request().Body).Decode(i)
	if err != nil {
		return errs.InvalidField("body", "invalid JSON: %v", err)
	}
	return nil
}
